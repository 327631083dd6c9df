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
# While the service answers other requests, no file's own failures push it further out.
HEALTHY_RETRY_CAP_SECONDS = 4.0
# ...for this many failures of that file in a row. More, while others get through, is no longer
# bad luck (at 50 % failures, 8 in a row is a 0.4 % event) but a file the service chokes on:
# its backoff grows again instead of re-sending it every few seconds for as long as it lasts.
HEALTHY_RETRY_FAILURES = 8
HEALTH_WINDOW_SECONDS = 30.0
RETRY_AFTER_STATUSES = frozenset({429, 503})  # where HTTP defines Retry-After for a retry
# The breaker's first probe comes this soon after it opens; each probe that finds the service
# still down doubles the wait, up to ``breaker_probe_seconds``.
FIRST_PROBE_SECONDS = 0.25
HALF_OPEN_PROBES = 3  # in flight at once, once one probe has succeeded
HALF_OPEN_SUCCESSES = 2  # needed to close, and at least as many as the failures
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
    now: float,
    *,
    failures: int,
    jitter: float,
    retry_after_seconds: float | None,
    service_answering: bool = False,
) -> float:
    """When to try again after a transient failure; the service's Retry-After is a floor.

    While the service is answering other requests, one file's run of bad luck says nothing
    about the service, so its backoff is capped at a few seconds instead of growing to
    minutes (the breaker, not each file, protects a service that is down). Past
    ``HEALTHY_RETRY_FAILURES`` in a row it grows again from there, up to the usual cap.
    """
    if not service_answering:
        delay = backoff_seconds(failures, jitter=jitter)
    elif failures <= HEALTHY_RETRY_FAILURES:
        delay = backoff_seconds(failures, jitter=jitter, cap_seconds=HEALTHY_RETRY_CAP_SECONDS)
    else:
        # 9 failures: 4-8 s, then doubling: the healthy cap is where the growth starts.
        delay = backoff_seconds(failures - HEALTHY_RETRY_FAILURES + 2, jitter=jitter)
    if retry_after_seconds is not None:
        delay = max(delay, retry_after_seconds)
    return now + delay


def release_at(now: float, *, scheduled_at: float | None, not_before: float | None) -> float | None:
    """When a job waiting out its backoff runs once the service is back (None: leave it).

    A release brings waits forward to ``now`` but never before ``not_before``, the end of the
    ``Retry-After`` the job's last answer carried: no request may precede its Retry-After.
    """
    target = now if not_before is None else max(now, not_before)
    if scheduled_at is None or scheduled_at <= target:
        return None
    return target


def resume_poll_at(
    now: float, *, scheduled_at: float | None, last_http_status: int | None
) -> float:
    """When a task left by the previous run is polled again after a restart.

    At once, unless its last answer was a 429 or a 503, the answers that carry a
    ``Retry-After``: the time stored then may be one (the store does not tell it apart from
    a backoff), and a restart must not cut it short. After other failures it polls at once,
    as a backoff of up to minutes is not worth keeping across a restart.
    """
    if last_http_status not in RETRY_AFTER_STATUSES or scheduled_at is None:
        return now
    return max(now, scheduled_at)


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """Whether the service is answering: it succeeded within ``HEALTH_WINDOW_SECONDS``."""

    last_success_at: float | None = None

    def on_success(self, now: float) -> ServiceHealth:
        return ServiceHealth(last_success_at=now)

    def is_answering(self, now: float) -> bool:
        return self.last_success_at is not None and now - self.last_success_at <= (
            HEALTH_WINDOW_SECONDS
        )


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
    HALF_OPEN = "half_open"  # a few probe requests find out whether it is back


@dataclass(frozen=True, slots=True)
class Breaker:
    """A circuit breaker over consecutive transient failures, as an immutable value.

    Open, it waits ``FIRST_PROBE_SECONDS`` and doubles the wait each time a probe finds the
    service still down, up to ``probe_seconds``: a service that stays down gets one request
    per ``probe_seconds``, one that comes back is found within that. Half-open, one probe
    goes first; once one succeeds, up to ``HALF_OPEN_PROBES`` go at a time, and the breaker
    closes on ``HALF_OPEN_SUCCESSES`` answers that are at least as many as the failures, so
    a service that comes back answering 5xx now and then is not shut out again by one of
    them. It reopens when the failures outweigh the successes, soon if the service has
    just answered, later if nothing has.
    """

    threshold: int
    probe_seconds: float
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    open_until: float = 0.0
    probes_in_flight: int = 0
    probe_successes: int = 0
    probe_failures: int = 0
    # Open periods in a row whose probes found nothing answering: the next wait doubles.
    silent_openings: int = 0

    def allows_request(self, now: float) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now >= self.open_until
        limit = HALF_OPEN_PROBES if self.probe_successes else 1
        return self.probes_in_flight < limit

    def on_request(self, now: float) -> Breaker:
        """Record that a request is being sent; past an open period it becomes a probe."""
        if self.state is BreakerState.CLOSED:
            return self
        if self.state is BreakerState.OPEN:
            return replace(
                self,
                state=BreakerState.HALF_OPEN,
                probes_in_flight=1,
                probe_successes=0,
                probe_failures=0,
            )
        return replace(self, probes_in_flight=self.probes_in_flight + 1)

    def on_success(self) -> Breaker:
        if self.state is BreakerState.CLOSED:
            return replace(self, consecutive_failures=0)
        successes = self.probe_successes + 1
        if successes >= HALF_OPEN_SUCCESSES and successes >= self.probe_failures:
            return Breaker(threshold=self.threshold, probe_seconds=self.probe_seconds)
        # A late answer to a request sent before the breaker opened counts as a probe too.
        return replace(
            self,
            state=BreakerState.HALF_OPEN,
            probes_in_flight=max(0, self.probes_in_flight - 1),
            probe_successes=successes,
            silent_openings=0,
        )

    def on_failure(self, now: float, *, retry_after_seconds: float | None = None) -> Breaker:
        if self.state is BreakerState.CLOSED:
            failures = self.consecutive_failures + 1
            if failures < self.threshold:
                return replace(self, consecutive_failures=failures)
            return self._open(now, retry_after_seconds, consecutive_failures=failures)
        if self.state is BreakerState.OPEN:
            # A late answer to a request sent before it opened: only a Retry-After moves it.
            until = max(self.open_until, now + (retry_after_seconds or 0.0))
            return replace(self, open_until=until)
        failures = self.probe_failures + 1
        if self.probe_successes == 0 or (failures >= 2 and failures > self.probe_successes):
            return self._open(
                now, retry_after_seconds, consecutive_failures=self.consecutive_failures + 1
            )
        return replace(
            self, probes_in_flight=max(0, self.probes_in_flight - 1), probe_failures=failures
        )

    def on_abandoned(self) -> Breaker:
        """A probe ended without telling anything (e.g. the file was unreadable)."""
        return replace(self, probes_in_flight=max(0, self.probes_in_flight - 1))

    def _open(
        self, now: float, retry_after_seconds: float | None, *, consecutive_failures: int
    ) -> Breaker:
        answered = self.state is BreakerState.HALF_OPEN and self.probe_successes > 0
        silent = 0 if answered else self.silent_openings + (self.state is BreakerState.HALF_OPEN)
        wait = min(self.probe_seconds, FIRST_PROBE_SECONDS * 2.0 ** min(silent, 30))
        return replace(
            self,
            state=BreakerState.OPEN,
            consecutive_failures=consecutive_failures,
            open_until=now + max(wait, retry_after_seconds or 0.0),
            probes_in_flight=0,
            probe_successes=0,
            probe_failures=0,
            silent_openings=silent,
        )


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
