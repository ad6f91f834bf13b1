"""A phone's registration, decided: which token to push to, and which to stop.

FCM refreshes a phone's registration token now and then; the app registers the new one and
names the token it `replaces`, which is then signed out ("token refreshed") so that the
leader does not get each push twice, once on a dead token. Pure: plain values in and out;
the handler carries it out through the store.
"""

from __future__ import annotations

from dataclasses import dataclass

REFRESHED = "token refreshed"  # why the replaced token stopped receiving pushes


@dataclass(frozen=True, slots=True)
class Registration:
    token: str  # the token to push to from now on
    retire: str | None  # a token of the same phone to stop pushing to, if any


def registration(token: str, replaces: str | None) -> Registration:
    """The phone registers `token`; `replaces` is the token it had before, if the app knew
    it. Registering a token again as its own replacement retires nothing."""
    return Registration(token, replaces if replaces is not None and replaces != token else None)
