"""Pairing a leader's phone: one-time codes to read aloud, and the limits on guessing them.

An operator makes a code for a leader (`dispatcher leaders pair`, or the admin API); the
leader's phone redeems it once, within its time, for a key of its own. Pure: codes, their
normal form, the failure limiter and the client's address take plain values and `now`.

A code is 8 symbols from 30 that are not confused when read aloud or typed (no 0/O, 1/I/L,
U/V): 30^8 is about 6.6e11. With at most 5 failures per address and 60 in all per 10
minutes, guessers together get 90 tries in a code's 15 minutes: about 1 chance in 7e9 of
hitting a live code.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0 O 1 I L U: nothing to mistake
LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def shown(code: str) -> str:
    """As people read it: ABCD-2345."""
    return f"{code[:4]}-{code[4:]}"


def normal(text: str) -> str | None:
    """A typed code in its stored form (upper case, no spaces or dashes), or None if it
    cannot be a code at all."""
    code = "".join(c for c in text.upper() if c not in " -\t")
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def digest(code: str) -> str:
    """What the store keeps of a code. A code lives 15 minutes and guesses are limited, so a
    plain SHA-256 is enough: a stolen table holds nothing valid for long."""
    return hashlib.sha256(f"pairing:{code}".encode()).hexdigest()


@dataclass
class FailureLimiter:
    """Failed redemptions, per client address and in all, over a sliding window. A client
    that reached its limit (or everyone, once the global one is reached) is refused until
    its oldest failure leaves the window; successes are not counted."""

    per_address: int = 5
    overall: int = 60
    window: timedelta = timedelta(minutes=10)
    max_addresses: int = 100_000  # beyond this the oldest addresses are forgotten
    _by_address: dict[str, deque[datetime]] = field(default_factory=dict)
    _all: deque[datetime] = field(default_factory=deque)

    def retry_after(self, address: str, now: datetime) -> float | None:
        """Seconds until `address` may try again, or None if it may now."""
        self._expire(now)
        waits = []
        mine = self._by_address.get(address)
        if mine is not None and len(mine) >= self.per_address:
            waits.append(mine[0] + self.window - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window - now)
        if not waits:
            return None
        return max(1.0, max(w.total_seconds() for w in waits))

    def failed(self, address: str, now: datetime) -> None:
        self._expire(now)
        mine = self._by_address.pop(address, None) or deque()
        mine.append(now)
        self._by_address[address] = mine  # most recent last, for forgetting the oldest
        self._all.append(now)
        while len(self._by_address) > self.max_addresses:
            del self._by_address[next(iter(self._by_address))]

    def _expire(self, now: datetime) -> None:
        start = now - self.window
        while self._all and self._all[0] <= start:
            self._all.popleft()
        stale = []
        for address, times in self._by_address.items():
            while times and times[0] <= start:
                times.popleft()
            if not times:
                stale.append(address)
            if len(stale) > 1000:
                break  # the rest next time: no long pause under a flood
        for address in stale:
            del self._by_address[address]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(
    remote: str | None, forwarded_for: Sequence[str], trusted: Iterable[Network]
) -> str:
    """The address a request came from. X-Forwarded-For is believed only when the peer is a
    trusted proxy, and then read from the right: the first address that is not itself a
    trusted proxy is the client (anything left of it the client could have written)."""
    nets = tuple(trusted)
    peer = remote or "unknown"
    if not nets or not _within(peer, nets):
        return peer
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, nets):
            return hop
    return hops[0] if hops else peer


def _within(address: str, nets: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)
