"""Table-driven tests of the pure timing decisions."""

from __future__ import annotations

import pytest

from ocrwatch.model import ErrorClass, TaskStatus
from ocrwatch.schedule import (
    Breaker,
    BreakerState,
    PollAction,
    backoff_seconds,
    decide_poll,
    first_poll_delay,
    next_poll_delay,
    retry_at,
    updated_estimate,
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


def simulate_first_polls(processing_seconds: float, rounds: int = 200) -> tuple[float, float]:
    """Feed the estimator what first polls would see for tasks of a fixed duration."""
    estimate: float | None = None
    hits = 0
    for _ in range(rounds):
        wait = first_poll_delay(estimate)
        finished = wait >= processing_seconds
        hits += finished
        estimate = updated_estimate(estimate, elapsed_seconds=wait, finished=finished, polls=1)
    assert estimate is not None
    return estimate, hits / rounds


@pytest.mark.parametrize("processing_seconds", [0.3, 1.0, 4.0, 12.0])
def test_first_polls_converge_near_the_real_processing_time(processing_seconds: float) -> None:
    estimate, hit_rate = simulate_first_polls(processing_seconds)
    assert processing_seconds * 0.8 <= estimate <= processing_seconds * 1.3
    assert hit_rate > 0.6, "most first polls find the task finished"
    assert first_poll_delay(estimate) < processing_seconds * 1.5 + 0.3


def test_later_polls_back_off_geometrically_up_to_a_cap() -> None:
    delays = [next_poll_delay(n, estimate_seconds=4.0) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(1.0)
    assert delays[-1] == 30.0


def test_breaker_opens_after_threshold_and_half_opens_for_one_probe() -> None:
    breaker = Breaker(threshold=3, probe_seconds=10.0)
    for _ in range(2):
        breaker = breaker.on_failure(0.0)
        assert breaker.state is BreakerState.CLOSED
    breaker = breaker.on_failure(0.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows_request(9.9)
    assert breaker.allows_request(10.0)
    breaker = breaker.on_request(10.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allows_request(10.5), "only one probe at a time"
    reopened = breaker.on_failure(11.0, retry_after_seconds=60.0)
    assert reopened.state is BreakerState.OPEN and reopened.open_until == 71.0
    assert breaker.on_success().state is BreakerState.CLOSED
    assert breaker.on_success().allows_request(10.5)


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
