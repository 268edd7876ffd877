"""A replaceable clock, so deadlines and schedulers are testable."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    """System time in UTC; ``offset`` lets tests move time forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class FixedClock(Clock):
    def __init__(self, at: datetime) -> None:
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at + self.offset
