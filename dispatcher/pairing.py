"""Pairing a leader's phone: one-time codes to read aloud, and the limits on guessing them.

An operator makes a code for a leader (`dispatcher leaders pair`, or the admin API); the
leader's phone redeems it once, within its time, for a key of its own. Pure: codes and
their normal form (the limit on guessing them is `guessing.FailureLimiter`).

A code is 8 symbols from 30 that are not confused when read aloud or typed (no 0/O, 1/I/L,
U/V): 30^8 is about 6.6e11. With at most 5 failures per address and 60 in all per 10
minutes, guessers together get 90 tries in a code's 15 minutes: about 1 chance in 7e9 of
hitting a live code.
"""

from __future__ import annotations

import hashlib
import secrets

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
