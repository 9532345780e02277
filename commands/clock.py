"""What time it is, injectable: timers (timed changes, approval expiry) read it from here, so a test
can move time forward instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with its time zone: SQLite hands datetimes back naive, in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
