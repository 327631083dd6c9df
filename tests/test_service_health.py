"""The service's health as pure values: the circuit breaker, health-capped backoff, not-before.

E.10: after an outage, work resumes within 5 s of the service answering again, even when it
comes back flaky, while a service that stays down gets at most one probe per
``breaker_probe_seconds``. E.11: while the service is answering, a file's own failures never
push its next try more than a few seconds out. E.9: nothing moves a request before the
``Retry-After`` its last answer carried.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from ocrwatch.config import ServiceConfig
from ocrwatch.schedule import (
    HEALTHY_RETRY_CAP_SECONDS,
    HEALTHY_RETRY_FAILURES,
    Breaker,
    BreakerState,
    ServiceHealth,
    release_at,
    resume_poll_at,
    retry_at,
)


def _default(name: str) -> float:
    """A ``service`` setting's default, as a user who does not set it gets it."""
    (field,) = [f for f in dataclasses.fields(ServiceConfig) if f.name == name]
    return float(field.default)  # type: ignore[arg-type]


PROBE_SECONDS = _default("breaker_probe_seconds")
THRESHOLD = int(_default("breaker_threshold"))

# ----------------------------------------------------------------- the breaker, step by step


def test_the_breaker_opens_after_threshold_failures_in_a_row() -> None:
    breaker = Breaker(threshold=3, probe_seconds=4.0)
    for _ in range(2):
        breaker = breaker.on_failure(0.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.on_success().on_failure(0.0).state is BreakerState.CLOSED, "a success resets"
    breaker = breaker.on_failure(0.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows_request(0.0)


def test_probes_back_off_while_the_service_stays_down_up_to_probe_seconds() -> None:
    breaker = Breaker(threshold=1, probe_seconds=2.0).on_failure(0.0)
    waits = []
    now = 0.0
    for _ in range(6):
        waits.append(breaker.open_until - now)
        now = breaker.open_until
        assert breaker.allows_request(now)
        breaker = breaker.on_request(now)
        assert breaker.state is BreakerState.HALF_OPEN
        assert not breaker.allows_request(now), "one probe at a time while nothing answered"
        breaker = breaker.on_failure(now)
        assert breaker.state is BreakerState.OPEN
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_retry_after_is_a_floor_for_the_open_period() -> None:
    breaker = Breaker(threshold=1, probe_seconds=2.0).on_failure(10.0, retry_after_seconds=30.0)
    assert breaker.open_until == 40.0


def test_half_open_lets_a_few_probes_through_after_a_success_and_closes_on_a_ratio() -> None:
    breaker = Breaker(threshold=1, probe_seconds=2.0).on_failure(0.0)
    breaker = breaker.on_request(1.0).on_success()
    assert breaker.state is BreakerState.HALF_OPEN, "one success is not enough"
    for _ in range(3):
        assert breaker.allows_request(1.0)
        breaker = breaker.on_request(1.0)
    assert not breaker.allows_request(1.0), "a few probes, not a flood"
    breaker = breaker.on_failure(1.1)  # one 5xx among them does not reopen it
    assert breaker.state is BreakerState.HALF_OPEN
    breaker = breaker.on_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows_request(1.2)


def test_half_open_reopens_when_failures_outweigh_successes_and_retries_soon() -> None:
    breaker = Breaker(threshold=1, probe_seconds=2.0).on_failure(0.0)
    breaker = breaker.on_request(1.0).on_success().on_request(1.0).on_request(1.0)
    breaker = breaker.on_failure(1.1).on_failure(1.1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == pytest.approx(1.35), "it answered lately: probe again soon"


def test_an_abandoned_probe_frees_its_place() -> None:
    breaker = Breaker(threshold=1, probe_seconds=2.0).on_failure(0.0).on_request(1.0)
    assert not breaker.allows_request(1.0)
    assert breaker.on_abandoned().allows_request(1.0)


# ----------------------------------------------------------------- E.10 recovery, simulated


def _recovery(
    seed: int, *, down_seconds: float = 25.0, error_rate: float = 0.2, workers: int = 4
) -> tuple[float, int]:
    """(seconds from the service's return to the breaker closing, requests sent while down).

    A fake clock in 10 ms steps; every answer takes 20 ms; ``workers`` requests at most in
    flight, each sent as soon as the breaker allows (a backlog is waiting).
    """
    draw = random.Random(seed)
    breaker = Breaker(threshold=THRESHOLD, probe_seconds=PROBE_SECONDS)
    in_flight: list[tuple[float, bool]] = []
    sent_while_down = 0
    now = 0.0
    while now < down_seconds + 600.0:
        for answer in [a for a in in_flight if a[0] <= now]:
            in_flight.remove(answer)
            breaker = breaker.on_success() if answer[1] else breaker.on_failure(now)
        if now >= down_seconds and breaker.state is BreakerState.CLOSED:
            return now - down_seconds, sent_while_down
        while len(in_flight) < workers and breaker.allows_request(now):
            breaker = breaker.on_request(now)
            is_up = now >= down_seconds
            in_flight.append((now + 0.02, is_up and draw.random() >= error_rate))
            sent_while_down += 0 if is_up else 1
        now = round(now + 0.01, 2)
    raise AssertionError("never recovered")


@pytest.mark.parametrize("down_seconds", [25.0, 300.0])
@pytest.mark.parametrize("seed", range(50))
def test_work_resumes_within_5_s_of_a_flaky_service_coming_back(
    seed: int, down_seconds: float
) -> None:
    resumed_after, sent_while_down = _recovery(seed, down_seconds=down_seconds)
    assert resumed_after <= 5.0
    # The failures that opened the breaker, then about one probe every breaker_probe_seconds
    # (the first few sooner).
    assert sent_while_down <= THRESHOLD + 8 + down_seconds / PROBE_SECONDS


def test_a_service_down_for_an_hour_gets_one_probe_per_probe_seconds() -> None:
    _, sent_while_down = _recovery(0, down_seconds=3600.0, error_rate=0.0)
    assert sent_while_down <= THRESHOLD + 8 + 3600 / PROBE_SECONDS


# ----------------------------------------------------------------- E.11 backoff while healthy


@pytest.mark.parametrize("failures", [1, 2, 3, 5, HEALTHY_RETRY_FAILURES])
@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_a_file_never_waits_more_than_a_few_seconds_while_the_service_answers(
    failures: int, jitter: float
) -> None:
    health = ServiceHealth().on_success(95.0)
    assert health.is_answering(100.0)
    when = retry_at(
        100.0,
        failures=failures,
        jitter=jitter,
        retry_after_seconds=None,
        service_answering=health.is_answering(100.0),
    )
    assert 100.0 < when <= 100.0 + HEALTHY_RETRY_CAP_SECONDS


def test_a_file_the_service_keeps_failing_backs_off_again_while_others_get_through() -> None:
    # A file whose every upload or poll meets a 5xx while the other files succeed: re-sent
    # every 4 s it would cost 900 requests an hour (uploads of its whole body) for as long as
    # transient failures go on, which is forever; it backs off to the usual cap instead.
    waits = [
        retry_at(0.0, failures=n, jitter=0.0, retry_after_seconds=None, service_answering=True)
        for n in range(1, 30)
    ]
    assert max(waits[:HEALTHY_RETRY_FAILURES]) <= HEALTHY_RETRY_CAP_SECONDS
    assert waits[HEALTHY_RETRY_FAILURES] >= HEALTHY_RETRY_CAP_SECONDS, "it grows from the cap"
    assert waits == sorted(waits), "never shrinks while the failures go on"
    assert waits[-1] == 150.0, "up to the usual cap (300 s, half of it fixed)"
    requests_per_hour = 0
    elapsed = 0.0
    for n in range(1, 10_000):
        elapsed += retry_at(
            0.0, failures=n, jitter=0.0, retry_after_seconds=None, service_answering=True
        )
        if elapsed > 3600.0:
            break
        requests_per_hour += 1
    assert requests_per_hour <= 40


def test_backoff_still_grows_while_the_service_is_not_answering() -> None:
    health = ServiceHealth().on_success(0.0)
    assert not health.is_answering(1000.0)
    assert not ServiceHealth().is_answering(0.0), "nothing answered yet"
    when = retry_at(
        1000.0, failures=8, jitter=0.0, retry_after_seconds=None, service_answering=False
    )
    assert when == 1000.0 + 128.0


def test_retry_after_is_honoured_even_while_the_service_answers() -> None:
    when = retry_at(100.0, failures=1, jitter=0.0, retry_after_seconds=30.0, service_answering=True)
    assert when == 130.0


# ----------------------------------------------------------------- E.9 release and not-before


@pytest.mark.parametrize(
    ("scheduled_at", "not_before", "expected"),
    [
        (300.0, None, 100.0),  # a long backoff: released now
        (300.0, 101.0, 101.0),  # waiting out a Retry-After: released at its end, not before
        (300.0, 99.0, 100.0),  # its Retry-After is over
        (100.5, 105.0, None),  # due before its not-before (never scheduled so): left alone
        (50.0, None, None),  # due already: nothing to release
        (None, None, None),  # not scheduled: due already
    ],
)
def test_a_release_never_moves_a_request_before_its_retry_after(
    scheduled_at: float | None, not_before: float | None, expected: float | None
) -> None:
    assert release_at(100.0, scheduled_at=scheduled_at, not_before=not_before) == expected


@pytest.mark.parametrize(
    ("scheduled_at", "last_http_status", "expected"),
    [
        (130.0, 429, 130.0),  # waiting out a Retry-After: a restart keeps it
        (130.0, 503, 130.0),  # a 503's Retry-After binds as much as a 429's
        (130.0, None, 100.0),  # an ordinary poll schedule: poll at once after a restart
        (130.0, 500, 100.0),  # a backoff after a plain server error: not worth keeping
        (90.0, 503, 100.0),  # its wait is over already
        (None, 429, 100.0),
    ],
)
def test_a_restart_polls_at_once_but_never_before_a_retry_after(
    scheduled_at: float | None, last_http_status: int | None, expected: float
) -> None:
    when = resume_poll_at(100.0, scheduled_at=scheduled_at, last_http_status=last_http_status)
    assert when == expected
