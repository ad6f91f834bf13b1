"""A clock that moves only when told: a day of cadence runs in seconds, with no sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock keeps aware UTC times")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("time does not run backwards")
        self.now += by
        return self.now

    def set(self, to: datetime) -> datetime:
        return self.advance(to - self.now)
