"""Pure timing decisions: retry backoff, adaptive polling, the circuit breaker, poll outcomes.

Nothing here sleeps, reads a clock or draws a random number: callers pass ``now`` and a
``jitter`` value in [0, 1), so every decision is reproducible in a table-driven test.

Transient failures never consume a file's attempts: an outage or a burst of 5xx only delays
files, and the circuit breaker stops the daemon from hammering a service that is down. Only
events that may have created a task (a POST whose outcome is unknown, a task that expired,
missed its deadline or vanished) count against ``max_attempts``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ocrwatch.model import ErrorClass, TaskStatus

RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
POLL_MIN_SECONDS = 0.25
POLL_CAP_SECONDS = 30.0
POLL_GROWTH = 1.5
DEFAULT_PROCESSING_ESTIMATE_SECONDS = 1.0


def backoff_seconds(
    failures: int,
    *,
    jitter: float,
    base_seconds: float = RETRY_BASE_SECONDS,
    cap_seconds: float = RETRY_CAP_SECONDS,
) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    exponent = min(max(failures, 1) - 1, 30)
    delay = min(cap_seconds, base_seconds * (2.0**exponent))
    return delay / 2.0 + jitter * delay / 2.0


def retry_at(
    now: float, *, failures: int, jitter: float, retry_after_seconds: float | None
) -> float:
    """When to try again after a transient failure; the service's Retry-After is a floor."""
    delay = backoff_seconds(failures, jitter=jitter)
    if retry_after_seconds is not None:
        delay = max(delay, retry_after_seconds)
    return now + delay


def updated_estimate(
    previous_seconds: float | None, *, elapsed_seconds: float, finished: bool, polls: int
) -> float:
    """Learn how long tasks take at the service from what one poll saw.

    A task found finished at its first poll finished at some unknown moment before it, so the
    elapsed time overstates it: learning from it as it is would let the estimate feed on its
    own poll delay and only ever grow. Such a hit pulls the estimate down a little; a first
    poll that comes too early pushes it up. The estimate settles where most first polls hit.
    """
    elapsed_seconds = max(0.0, elapsed_seconds)
    if finished and polls <= 1:
        observed = elapsed_seconds * 0.8
    elif finished:
        observed = elapsed_seconds
    elif polls <= 1:
        observed = elapsed_seconds * 1.5
    else:
        return previous_seconds if previous_seconds is not None else elapsed_seconds
    if previous_seconds is None:
        return observed
    return 0.7 * previous_seconds + 0.3 * observed


def first_poll_delay(estimate_seconds: float | None) -> float:
    """The first poll comes at about the observed processing time, slightly after it."""
    estimate = DEFAULT_PROCESSING_ESTIMATE_SECONDS if estimate_seconds is None else estimate_seconds
    return max(POLL_MIN_SECONDS, estimate * 1.05 + 0.02)


def next_poll_delay(polls_so_far: int, *, estimate_seconds: float | None) -> float:
    """Later polls back off geometrically from a fraction of the estimate, up to a cap."""
    estimate = DEFAULT_PROCESSING_ESTIMATE_SECONDS if estimate_seconds is None else estimate_seconds
    start = max(POLL_MIN_SECONDS, estimate * 0.25)
    return min(POLL_CAP_SECONDS, start * (POLL_GROWTH ** max(0, polls_so_far - 1)))


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # requests flow
    OPEN = "open"  # the service looks down: no requests until ``open_until``
    HALF_OPEN = "half_open"  # one probe request is allowed to find out if it is back


@dataclass(frozen=True, slots=True)
class Breaker:
    """A circuit breaker over consecutive transient failures, as an immutable value."""

    threshold: int
    probe_seconds: float
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    open_until: float = 0.0
    probe_in_flight: bool = False

    def allows_request(self, now: float) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        return now >= self.open_until and not self.probe_in_flight

    def on_request(self, now: float) -> Breaker:
        """Record that a request is being sent; past an open period it becomes the probe."""
        if self.state is BreakerState.CLOSED:
            return self
        return replace(self, state=BreakerState.HALF_OPEN, probe_in_flight=True)

    def on_success(self) -> Breaker:
        return replace(
            self, state=BreakerState.CLOSED, consecutive_failures=0, probe_in_flight=False
        )

    def on_failure(self, now: float, *, retry_after_seconds: float | None = None) -> Breaker:
        failures = self.consecutive_failures + 1
        if self.state is BreakerState.CLOSED and failures < self.threshold:
            return replace(self, consecutive_failures=failures)
        pause = max(self.probe_seconds, retry_after_seconds or 0.0)
        return replace(
            self,
            state=BreakerState.OPEN,
            consecutive_failures=failures,
            open_until=now + pause,
            probe_in_flight=False,
        )

    def on_abandoned(self) -> Breaker:
        """A probe ended without telling anything (e.g. the file was unreadable)."""
        return replace(self, probe_in_flight=False)


class PollAction(enum.StrEnum):
    WRITE = "write"  # completed: fetch results (if needed) and write the sidecars
    FAIL = "fail"  # the task failed, or nothing is left to try
    RESUBMIT = "resubmit"  # submit the file again (the task is gone or overdue)
    WAIT = "wait"  # not finished: poll again at ``poll_at``


@dataclass(frozen=True, slots=True)
class PollDecision:
    action: PollAction
    poll_at: float | None = None
    error_class: ErrorClass | None = None
    reason: str = ""


def decide_poll(
    status: TaskStatus,
    *,
    now: float,
    submitted_at: float,
    polls_so_far: int,
    attempts: int,
    max_attempts: int,
    deadline_seconds: float,
    estimate_seconds: float | None,
) -> PollDecision:
    """What one poll's task status means for the job."""
    if status is TaskStatus.COMPLETED:
        return PollDecision(PollAction.WRITE)
    if status is TaskStatus.ERROR:
        return PollDecision(
            PollAction.FAIL, error_class=ErrorClass.TASK_ERROR, reason="the service reported Error"
        )
    if status is TaskStatus.NOT_EXIST:
        return _resubmit_or_fail(
            attempts,
            max_attempts,
            ErrorClass.ATTEMPTS_EXHAUSTED,
            "the task no longer exists at the service (expired or lost)",
        )
    if now - submitted_at >= deadline_seconds:
        return _resubmit_or_fail(
            attempts,
            max_attempts,
            ErrorClass.DEADLINE,
            f"the task did not finish within {deadline_seconds:g} s",
        )
    delay = next_poll_delay(polls_so_far + 1, estimate_seconds=estimate_seconds)
    poll_at = min(now + delay, submitted_at + deadline_seconds)
    return PollDecision(PollAction.WAIT, poll_at=max(poll_at, now + POLL_MIN_SECONDS))


def _resubmit_or_fail(
    attempts: int, max_attempts: int, error_class: ErrorClass, reason: str
) -> PollDecision:
    if attempts < max_attempts:
        return PollDecision(PollAction.RESUBMIT, reason=reason)
    return PollDecision(
        PollAction.FAIL,
        error_class=error_class,
        reason=f"{reason}; gave up after {attempts} submissions",
    )
