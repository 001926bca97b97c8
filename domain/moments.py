"""Moments in time: always UTC, timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """A moment in UTC; one without a zone is taken as UTC.

    Raises ValueError for a moment with no UTC equivalent (year 1 at +14:00), so callers
    that refuse bad input with ValueError refuse these too.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("the time is outside the range of dates") from error
