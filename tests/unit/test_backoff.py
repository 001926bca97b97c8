"""Retry pacing: full-jitter exponential backoff and the Retry-After header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.backoff import delay, retry_after

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _half() -> float:
    return 0.5


def _top() -> float:
    return 0.999


@pytest.mark.parametrize(("attempt", "expected"), [(0, 0.05), (1, 0.1), (2, 0.2), (4, 0.8)])
def test_the_ceiling_doubles_with_each_attempt(attempt: int, expected: float) -> None:
    # Given a fixed draw in the middle of the interval and a base of 0.1 s
    # Then the delay is half of base * 2**attempt
    assert delay(attempt, 0.1, 30.0, _half) == pytest.approx(expected)


def test_the_ceiling_stops_at_the_cap() -> None:
    assert delay(10, 0.1, 5.0, _half) == pytest.approx(2.5)
    assert delay(10, 0.1, 5.0, _top) < 5.0


def test_full_jitter_may_retry_at_once() -> None:
    assert delay(6, 0.1, 5.0, lambda: 0.0) == 0.0


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert delay(100_000, 0.1, 5.0, _half) == pytest.approx(2.5)


@pytest.mark.parametrize(("attempt", "base", "cap"), [(-1, 0.1, 1.0), (0, 0.0, 1.0), (0, 0.1, -1)])
def test_nonsense_arguments_are_refused(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must"):
        delay(attempt, base, cap, _half)


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0)])
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    assert retry_after(header, now=NOW, maximum=300.0) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    assert retry_after("Sun, 01 Mar 2026 12:01:30 GMT", now=NOW, maximum=300.0) == 90.0


def test_retry_after_in_the_past_means_now() -> None:
    assert retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=NOW, maximum=300.0) == 0.0


def test_retry_after_is_clamped_so_a_peer_cannot_park_the_caller() -> None:
    assert retry_after("86400", now=NOW, maximum=60.0) == 60.0
    assert retry_after("Mon, 01 Mar 2027 12:00:00 GMT", now=NOW, maximum=60.0) == 60.0


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "+30", "12 seconds"])
def test_unusable_retry_after_values_give_none(header: str | None) -> None:
    assert retry_after(header, now=NOW, maximum=60.0) is None
