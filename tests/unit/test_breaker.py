"""Circuit breaker: when it opens, how long it stays open, and how one trial decides."""

from __future__ import annotations

import pytest

from domain.breaker import BreakerState, CircuitBreaker


def _opened(at: float = 100.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=3, cool_down=10.0)
    for _ in range(3):
        breaker.record_failure(at)
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_a_new_breaker_is_closed_and_lets_calls_through() -> None:
    breaker = CircuitBreaker()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow(0.0)
    assert breaker.retry_after(0.0) == 0.0


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    # Given the default threshold of five
    breaker = CircuitBreaker()

    # When four calls fail it still lets calls through
    for _ in range(4):
        breaker.record_failure(1.0)
    assert breaker.allow(1.0)

    # Then the fifth consecutive failure opens it
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(1.0)


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    # Given two failures, a success, and two failures more
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure(1.0)
    breaker.record_failure(1.0)
    breaker.record_success(1.0)
    breaker.record_failure(1.0)
    breaker.record_failure(1.0)

    # Then no three failed in a row, so it stays closed
    assert breaker.state is BreakerState.CLOSED


def test_an_open_breaker_refuses_calls_until_the_cool_down_has_passed() -> None:
    breaker = _opened(at=100.0)

    assert not breaker.allow(109.9)
    assert breaker.retry_after(104.0) == pytest.approx(6.0)
    assert breaker.allow(110.0)
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_trial_through() -> None:
    # Given a breaker whose cool-down has passed
    breaker = _opened(at=100.0)
    assert breaker.allow(110.0)

    # Then further calls wait for the trial's outcome
    assert not breaker.allow(110.1)
    assert not breaker.allow(115.0)


def test_a_successful_trial_closes_the_breaker() -> None:
    breaker = _opened(at=100.0)
    assert breaker.allow(110.0)

    breaker.record_success(110.5)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow(110.5)
    assert breaker.allow(110.5)


def test_a_failed_trial_reopens_the_breaker_for_a_new_cool_down() -> None:
    breaker = _opened(at=100.0)
    assert breaker.allow(110.0)

    breaker.record_failure(111.0)

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(120.9)
    assert breaker.allow(121.0)


def test_after_a_reopen_the_threshold_counts_afresh() -> None:
    # Given a breaker that was opened and then closed by a good trial
    breaker = _opened(at=100.0)
    assert breaker.allow(110.0)
    breaker.record_success(110.0)

    # When two calls fail
    breaker.record_failure(111.0)
    breaker.record_failure(111.0)

    # Then the failures from before the opening do not count towards the threshold of three
    assert breaker.state is BreakerState.CLOSED


def test_a_trial_that_never_reports_does_not_hold_the_breaker_half_open_forever() -> None:
    # Given a trial whose caller vanished without recording an outcome
    breaker = _opened(at=100.0)
    assert breaker.allow(110.0)

    # Then after another cool-down a new trial may go
    assert not breaker.allow(119.0)
    assert breaker.retry_after(119.0) == pytest.approx(1.0)
    assert breaker.allow(120.0)


def test_late_outcomes_of_calls_sent_before_it_opened_change_nothing() -> None:
    # Given an open breaker
    breaker = _opened(at=100.0)

    # When calls that went out earlier report back late
    breaker.record_failure(105.0)
    breaker.record_success(106.0)

    # Then it stays open, and the cool-down still runs from the opening
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(109.0)
    assert breaker.allow(110.0)


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 10.0), (5, 0.0), (5, -1.0)])
def test_nonsense_settings_are_refused(threshold: int, cool_down: float) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker(failure_threshold=threshold, cool_down=cool_down)
