"""Retry pacing: exponential backoff with full jitter, and the peer's own Retry-After."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 2.0 ** 1024 overflows a float; far beyond any cap long before that.
_MAX_DOUBLINGS = 1000
_DELAY_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)


def delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Full jitter: uniform in [0, min(cap, base * 2**attempt)), with ``rand`` giving [0, 1).
    Spreading the whole interval keeps many clients that failed together from retrying
    together, which matters more than a guaranteed minimum wait.
    """
    if attempt < 0:
        raise ValueError("attempt must not be negative")
    if base <= 0 or cap < 0:
        raise ValueError("base must be positive and cap not negative")
    ceiling = min(cap, base * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    return rand() * ceiling


def retry_after(value: str | None, *, now: datetime, maximum: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for, at most ``maximum``; None when unusable.

    Accepts delay-seconds and an HTTP-date (read as UTC, since HTTP dates are GMT). A date in
    the past means 0. A peer must not be able to park the caller for days, hence the clamp.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return min(float(text), maximum)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), maximum)
