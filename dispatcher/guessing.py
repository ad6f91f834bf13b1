"""Limits on guessing a secret: failed tries per client address over a sliding window, the
secrets that have worked from an address lately, and whose address a request came from.
Pure: plain values and `now` in.

Three doors use it: redeeming a phone's pairing code (`web/access.py`: 5 failures per address
and 60 in all per 10 minutes, see `pairing.py`), signing in at the desk (`web/desk/pages.py`:
10 failures per address per 10 minutes, no overall cap, a success clears the address) and
Bearer API keys (`web/auth.py`: 20 unknown keys per address per 10 minutes, no overall cap;
keys that worked from the address before go on working). An IPv6 client is counted by its
/64, which one machine or household usually holds whole, so that walking through its
addresses does not buy more tries.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class FailureLimiter:
    """Failed tries, per client address and in all, over a sliding window. A client that
    reached its limit (or everyone, once the overall one is reached) is refused until its
    oldest failure leaves the window; successes are not counted, and `succeeded` clears an
    address. `overall=None` sets no overall limit."""

    per_address: int = 5
    overall: int | None = 60
    window: timedelta = timedelta(minutes=10)
    max_addresses: int = 100_000  # beyond this the oldest addresses are forgotten
    # OrderedDict, not dict: taking the oldest from the front of a plain dict that had
    # entries moved to its end walks over their empty slots, which grows with the traffic.
    _by_address: OrderedDict[str, deque[datetime]] = field(default_factory=OrderedDict)
    _all: deque[datetime] = field(default_factory=deque)

    def retry_after(self, address: str, now: datetime) -> float | None:
        """Seconds until `address` may try again, or None if it may now."""
        self._expire(now)
        waits = []
        mine = self._mine(counted_as(address), now)
        if mine is not None and len(mine) >= self.per_address:
            waits.append(mine[0] + self.window - now)
        if self.overall is not None and len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window - now)
        if not waits:
            return None
        return max(1.0, max(w.total_seconds() for w in waits))

    def failed(self, address: str, now: datetime) -> None:
        self._expire(now)
        key = counted_as(address)
        mine = self._mine(key, now)
        if mine is None:
            mine = self._by_address[key] = deque()
        mine.append(now)
        self._by_address.move_to_end(key)  # most recent last, for forgetting the oldest
        if self.overall is not None:
            self._all.append(now)
        while len(self._by_address) > self.max_addresses:
            self._by_address.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """The address got in: its failures are forgotten (not the overall count's)."""
        self._by_address.pop(counted_as(address), None)

    def _expire(self, now: datetime) -> None:
        # Addresses are kept in the order of their latest failure, so the stale ones are at
        # the front: each call does only the work that became due (no pass over all of
        # them, which a flood from many addresses would make long). An address's own older
        # failures are dropped when it is asked about (`_mine`).
        start = now - self.window
        while self._all and self._all[0] <= start:
            self._all.popleft()
        while self._by_address:
            oldest = next(iter(self._by_address))
            times = self._by_address[oldest]
            if times and times[-1] > start:
                break
            self._by_address.popitem(last=False)

    def _mine(self, key: str, now: datetime) -> deque[datetime] | None:
        mine = self._by_address.get(key)
        if mine is not None:
            start = now - self.window
            while mine and mine[0] <= start:
                mine.popleft()
        return mine


@dataclass
class Vouched:
    """Which secrets (by digest) have worked from which address (as `counted_as`) lately, so
    that an address shut out by another's wrong keys still admits them. Kept in the order of
    last use; the oldest are forgotten past `keep` or beyond `max_entries`."""

    keep: timedelta = timedelta(hours=24)
    max_entries: int = 100_000
    _seen: OrderedDict[tuple[str, str], datetime] = field(default_factory=OrderedDict)

    def worked(self, address: str, digest: str, now: datetime) -> None:
        pair = (counted_as(address), digest)
        self._seen[pair] = now
        self._seen.move_to_end(pair)
        start = now - self.keep
        while len(self._seen) > self.max_entries or self._seen[next(iter(self._seen))] <= start:
            self._seen.popitem(last=False)

    def has_worked(self, address: str, digest: str, now: datetime) -> bool:
        seen = self._seen.get((counted_as(address), digest))
        return seen is not None and seen > now - self.keep


def counted_as(address: str) -> str:
    """What failures are counted against: an IPv4 address itself, an IPv6 address's /64
    (one machine or home usually holds a whole /64), anything else as it is."""
    if ":" not in address:
        # IPv4 (which `ipaddress` reads only in its one written form) or no address at all:
        # as it is. Asked on every API request, so no parsing here.
        return address
    return _ipv6_counted_as(address)


@functools.lru_cache(maxsize=4096)  # a phone keeps its address a while; parsing is the cost
def _ipv6_counted_as(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
