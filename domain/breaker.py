"""Circuit breaker for one upstream peer: stop calling it while it keeps failing.

Pure state machine, the caller supplies the clock (seconds, any monotonic origin):

- CLOSED: calls pass; ``failure_threshold`` consecutive failures open the breaker.
- OPEN: calls are refused until ``cool_down`` seconds have passed since it opened.
- HALF_OPEN: one trial call passes; its success closes the breaker, its failure reopens it.

Single event loop use only: no locking.
"""

from __future__ import annotations

from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, cool_down: float = 10.0) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down <= 0:
            raise ValueError("cool_down must be positive")
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state as of the last call; OPEN turns HALF_OPEN only when ``allow`` is asked."""
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a call may go out now. In HALF_OPEN a True reserves the single trial."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self.cool_down:
                return False
            self._state = BreakerState.HALF_OPEN
            self._trial_started_at = now
            return True
        # A trial whose outcome was never recorded (its caller was cancelled) must not keep
        # the breaker half open forever: after another cool-down a new trial may go.
        if self._trial_started_at is not None and now - self._trial_started_at < self.cool_down:
            return False
        self._trial_started_at = now
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until ``allow`` can next return True; 0 when it would now."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        since = self._opened_at if self._state is BreakerState.OPEN else self._trial_started_at
        if since is None:
            return 0.0
        return max(0.0, self.cool_down - (now - since))

    def record_success(self, now: float) -> None:
        # A late success of a call sent before the breaker opened says little about the peer
        # now, so only a success while CLOSED or of the trial changes anything.
        if self._state is BreakerState.OPEN:
            return
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial_started_at = None

    def record_failure(self, now: float) -> None:
        if self._state is BreakerState.OPEN:
            # Late failures of calls sent before opening must not stretch the cool-down.
            return
        if self._state is BreakerState.HALF_OPEN:
            self._open(now)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self._trial_started_at = None
