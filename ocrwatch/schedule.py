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
POLL_MIN_SECONDS = 0.1
POLL_CAP_SECONDS = 30.0
POLL_GROWTH = 1.5
SECOND_POLL_FRACTION = 0.1
LATER_POLL_FRACTION = 0.25
DEFAULT_PROCESSING_ESTIMATE_SECONDS = 1.0
# A first-poll hit shrinks the estimate by 2 %, a miss grows it by 5 %: in balance about
# 29 % of first polls miss (ln 0.98 / (ln 0.98 - ln 1.05)). Each 8 hits in a row shrink faster.
ESTIMATE_SHRINK = 0.98
ESTIMATE_GROWTH = 1.05
STREAK_ACCELERATION = 8


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


@dataclass(frozen=True, slots=True)
class ProcessingEstimate:
    """How long tasks take at the service, learned from what first polls see.

    ``seconds`` tracks a high quantile of the processing time (about the 70th percentile):
    a first poll that finds its task finished shrinks it a little, one that comes too early
    grows it a little more, so it settles where about 70 % of first polls hit. A task found
    finished at its first poll finished at some unknown moment before it, so the elapsed
    time itself is never learned from a hit: that would let the estimate feed on its own
    poll delay and only ever grow. A run of hits shrinks faster and faster, so an estimate
    far above the real time comes down within a few dozen tasks; a task that needed several
    polls and took much longer than the estimate pulls it up at once.
    """

    seconds: float = DEFAULT_PROCESSING_ESTIMATE_SECONDS
    hit_streak: int = 0

    def observe(
        self, *, elapsed_seconds: float, finished: bool, polls: int, cap_seconds: float
    ) -> ProcessingEstimate:
        """The estimate after one on-schedule poll that saw ``finished`` at its ``polls``-th."""
        elapsed_seconds = max(0.0, elapsed_seconds)
        # Each step is taken from the poll's own elapsed time, not from the estimate: a burst
        # of polls scheduled with the same estimate (a backlog keeps dozens in flight) moves
        # it once, not once per poll.
        if finished and polls <= 1:
            streak = self.hit_streak + 1
            shrink = ESTIMATE_SHRINK ** (1 + streak // STREAK_ACCELERATION)
            seconds = min(self.seconds, elapsed_seconds * shrink)
        elif polls <= 1:
            streak, seconds = 0, max(self.seconds, elapsed_seconds * ESTIMATE_GROWTH)
        elif finished:
            streak, seconds = 0, self.seconds
            if elapsed_seconds > self.seconds * 1.5:  # tasks got much slower: catch up now
                seconds = 0.7 * self.seconds + 0.3 * 0.9 * elapsed_seconds
        else:
            return self
        return ProcessingEstimate(min(cap_seconds, max(POLL_MIN_SECONDS, seconds)), streak)


def first_poll_delay(estimate_seconds: float) -> float:
    """The first poll comes when the estimate says most tasks are finished."""
    return max(POLL_MIN_SECONDS, estimate_seconds)


def next_poll_delay(polls_done: int, *, estimate_seconds: float) -> float:
    """The wait after the ``polls_done``-th poll found the task unfinished.

    A first poll misses only by a little when the estimate is right, so the second comes
    soon (a tenth of the estimate); later polls back off geometrically from a quarter of
    the estimate, up to a cap.
    """
    if polls_done <= 1:
        delay = estimate_seconds * SECOND_POLL_FRACTION
    else:
        delay = estimate_seconds * LATER_POLL_FRACTION * POLL_GROWTH ** (polls_done - 2)
    return min(POLL_CAP_SECONDS, max(POLL_MIN_SECONDS, delay))


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
    estimate_seconds: float,
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
    delay = next_poll_delay(polls_so_far, estimate_seconds=estimate_seconds)
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
