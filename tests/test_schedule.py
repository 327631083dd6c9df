"""Table-driven tests of the pure timing decisions."""

from __future__ import annotations

import pytest

from ocrwatch.model import ErrorClass, TaskStatus
from ocrwatch.schedule import (
    POLL_MIN_SECONDS,
    Breaker,
    BreakerState,
    PollAction,
    ProcessingEstimate,
    backoff_seconds,
    decide_poll,
    first_poll_delay,
    next_poll_delay,
    retry_at,
)


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (1, 0.0, 1.0),
        (1, 1.0, 2.0),
        (2, 0.0, 2.0),
        (3, 0.5, 6.0),
        (20, 0.0, 150.0),
        (20, 1.0, 300.0),
    ],
)
def test_backoff_doubles_with_jitter_and_is_capped(
    failures: int, jitter: float, expected: float
) -> None:
    assert backoff_seconds(failures, jitter=jitter) == pytest.approx(expected)


def test_retry_after_from_the_service_is_a_floor() -> None:
    assert retry_at(100.0, failures=1, jitter=0.0, retry_after_seconds=30.0) == 130.0
    assert retry_at(100.0, failures=1, jitter=0.0, retry_after_seconds=None) == 101.0


def simulate_first_polls(
    processing_seconds: float, rounds: int = 300, start: ProcessingEstimate | None = None
) -> tuple[ProcessingEstimate, float, list[float]]:
    """Feed the estimator what first polls (and the polls after a miss) see for fixed tasks."""
    estimate = start or ProcessingEstimate()
    hits = 0
    lateness: list[float] = []
    for _ in range(rounds):
        seen_at = first_poll_delay(estimate.seconds)
        polls = 1
        finished = seen_at >= processing_seconds
        hits += finished
        estimate = estimate.observe(
            elapsed_seconds=seen_at, finished=finished, polls=1, cap_seconds=1e9
        )
        while not finished:
            seen_at += next_poll_delay(polls, estimate_seconds=estimate.seconds)
            polls += 1
            finished = seen_at >= processing_seconds
            estimate = estimate.observe(
                elapsed_seconds=seen_at, finished=finished, polls=polls, cap_seconds=1e9
            )
        lateness.append(seen_at - processing_seconds)
    return estimate, hits / rounds, lateness


@pytest.mark.parametrize("processing_seconds", [0.3, 1.0, 4.0, 12.0])
def test_first_polls_converge_near_the_real_processing_time(processing_seconds: float) -> None:
    estimate, hit_rate, lateness = simulate_first_polls(processing_seconds)
    assert processing_seconds * 0.9 <= estimate.seconds <= processing_seconds * 1.15
    assert 0.6 < hit_rate < 0.85, "most first polls find the task finished"
    settled = sorted(lateness[100:])
    # Once settled, a task is seen finished within about 5 % of its processing time, and
    # a miss costs at most a tenth of it more (or the shortest poll interval).
    assert settled[len(settled) // 2] < processing_seconds * 0.06
    assert max(settled) < max(processing_seconds * 0.16, POLL_MIN_SECONDS * 1.01)


@pytest.mark.parametrize("start_seconds", [0.2, 20.0])
def test_an_estimate_far_off_comes_to_the_real_time_within_a_few_dozen_tasks(
    start_seconds: float,
) -> None:
    estimate, _, lateness = simulate_first_polls(
        2.0, rounds=60, start=ProcessingEstimate(seconds=start_seconds)
    )
    assert 1.8 <= estimate.seconds <= 2.3
    assert max(lateness[-10:]) < 0.3


def test_a_burst_of_polls_scheduled_together_moves_the_estimate_once() -> None:
    """A backlog keeps dozens of tasks in flight, all polled with the same estimate."""
    estimate = ProcessingEstimate(seconds=2.0)
    misses = estimate
    for _ in range(32):
        misses = misses.observe(elapsed_seconds=2.0, finished=False, polls=1, cap_seconds=60)
    assert misses.seconds == pytest.approx(2.0 * 1.05)
    hits = estimate
    for _ in range(32):
        hits = hits.observe(elapsed_seconds=2.0, finished=True, polls=1, cap_seconds=60)
    assert 2.0 * 0.98**5 <= hits.seconds < 2.0 * 0.98


def test_an_estimate_stays_between_the_floor_and_the_cap() -> None:
    low = ProcessingEstimate(seconds=POLL_MIN_SECONDS, hit_streak=100)
    assert low.observe(elapsed_seconds=0.1, finished=True, polls=1, cap_seconds=60).seconds == (
        POLL_MIN_SECONDS
    )
    high = ProcessingEstimate(seconds=14.0)
    assert high.observe(elapsed_seconds=300, finished=True, polls=5, cap_seconds=15).seconds == 15
    unfinished = high.observe(elapsed_seconds=30, finished=False, polls=3, cap_seconds=60)
    assert unfinished == high, "an unfinished later poll teaches nothing new"


def test_the_second_poll_comes_soon_and_later_ones_back_off_geometrically_up_to_a_cap() -> None:
    delays = [next_poll_delay(n, estimate_seconds=4.0) for n in range(1, 14)]
    assert delays[0] == pytest.approx(0.4)
    assert delays[1] == pytest.approx(1.0)
    assert delays == sorted(delays)
    assert delays[-1] == 30.0
    assert next_poll_delay(1, estimate_seconds=0.2) == POLL_MIN_SECONDS


def test_breaker_opens_after_threshold_and_half_opens_for_one_probe() -> None:
    # The breaker's whole behaviour is tabled in tests/test_service_health.py.
    breaker = Breaker(threshold=3, probe_seconds=10.0)
    for _ in range(2):
        breaker = breaker.on_failure(0.0)
        assert breaker.state is BreakerState.CLOSED
    breaker = breaker.on_failure(0.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows_request(0.2)
    assert breaker.allows_request(0.25), "the first probe comes soon"
    breaker = breaker.on_request(0.25)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allows_request(0.3), "only one probe until one succeeds"
    reopened = breaker.on_failure(1.0, retry_after_seconds=60.0)
    assert reopened.state is BreakerState.OPEN and reopened.open_until == 61.0
    assert breaker.on_success().on_request(0.3).on_success().state is BreakerState.CLOSED


COMMON = {"now": 100.0, "submitted_at": 90.0, "polls_so_far": 1, "estimate_seconds": 2.0}


@pytest.mark.parametrize(
    ("status", "attempts", "deadline", "action", "error_class"),
    [
        (TaskStatus.COMPLETED, 1, 3600.0, PollAction.WRITE, None),
        (TaskStatus.ERROR, 1, 3600.0, PollAction.FAIL, ErrorClass.TASK_ERROR),
        (TaskStatus.NOT_EXIST, 1, 3600.0, PollAction.RESUBMIT, None),
        (TaskStatus.NOT_EXIST, 5, 3600.0, PollAction.FAIL, ErrorClass.ATTEMPTS_EXHAUSTED),
        (TaskStatus.PENDING, 1, 3600.0, PollAction.WAIT, None),
        (TaskStatus.PROCESSING, 1, 5.0, PollAction.RESUBMIT, None),
        (TaskStatus.PROCESSING, 5, 5.0, PollAction.FAIL, ErrorClass.DEADLINE),
    ],
)
def test_poll_outcomes(
    status: TaskStatus,
    attempts: int,
    deadline: float,
    action: PollAction,
    error_class: ErrorClass | None,
) -> None:
    decision = decide_poll(
        status, attempts=attempts, max_attempts=5, deadline_seconds=deadline, **COMMON
    )
    assert decision.action is action
    assert decision.error_class is error_class


def test_waiting_never_polls_past_the_deadline() -> None:
    decision = decide_poll(
        TaskStatus.PENDING,
        now=100.0,
        submitted_at=0.0,
        polls_so_far=30,
        attempts=1,
        max_attempts=5,
        deadline_seconds=101.0,
        estimate_seconds=2.0,
    )
    assert decision.action is PollAction.WAIT
    assert decision.poll_at == pytest.approx(101.0)
