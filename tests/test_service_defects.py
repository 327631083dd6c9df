"""Daemon defects found by independent fault runs, each driven on a fake clock with ``tick(now)``.

The service runs against the real emulator over HTTP with the real client and SQLite; only
the clock is fake. ``tick_settled`` waits for the calls a tick started before applying them
at the same fake moment, so each scenario's times are exact whatever the machine's load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import (
    FakeClock,
    drop,
    emulator_submits,
    running_service,
    tick_settled,
    write_config,
)
from daemon_process import run_once
from structlog.testing import capture_logs

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_jpeg, make_pdf, make_png
from ocrwatch.model import JobState
from ocrwatch.schedule import HEALTHY_RETRY_CAP_SECONDS
from ocrwatch.service import Service
from ocrwatch.store import Store


def run_ticks(
    service: Service, clock: FakeClock, *, step_seconds: float, until: Any, limit: int = 400
) -> None:
    """Advance the fake clock by ``step_seconds`` per tick until ``until()`` holds."""
    for _ in range(limit):
        if until():
            return
        tick_settled(service, clock.advance(step_seconds))
    raise AssertionError(f"not reached after {limit} ticks: {service.status_line()}")


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry.get("event") == name]


# ----------------------------------------------------------------- E.12 vanished before upload


@pytest.mark.parametrize("how", ["deleted", "folder_renamed"])
def test_a_file_that_vanishes_between_settling_and_upload_is_forgotten(
    tmp_path: Path, emulator: Emulator, how: str
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        service={"max_in_flight": 1},
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "recursive": True}],
    )
    inbox = tmp_path / "inbox"
    drop(inbox / "sub" / "a.png", make_png("first"))
    drop(inbox / "sub" / "b.png", make_png("second"))
    clock = FakeClock()
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock) as (service, store, _),
    ):
        tick_settled(service, clock.advance(0.5))
        # One slot: one file is at the service, the other settled and waits in the queue.
        (waiting,) = store.jobs([JobState.QUEUED])
        assert len(store.jobs([JobState.SUBMITTED])) == 1
        if how == "deleted":
            waiting.path.unlink()
        else:
            (inbox / "sub").rename(inbox / "moved")
        run_ticks(service, clock, step_seconds=1.0, until=lambda: _settled_down(store, waiting))
        assert service.progress().failed == 0, "a vanished file is not a failure"
        assert store.history(waiting.path) == [], "its row is forgotten"
    assert not (tmp_path / "errors").exists()
    vanished = events(logs, "file_vanished")
    assert [entry["path"] for entry in vanished] == [str(waiting.path)]
    assert not events(logs, "job_step_crashed")


def _settled_down(store: Store, job: Any) -> bool:
    return not store.history(job.path) or not store.get(job.id).state.is_active


# ----------------------------------------------------------------- E.8 replaced while failing


@pytest.mark.parametrize("how", ["renamed_over", "rewritten_in_place"])
def test_a_good_rescan_replacing_a_failing_file_is_processed_not_sent_to_errors(
    tmp_path: Path, emulator: Emulator, how: str
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    target = tmp_path / "inbox" / "doc.png"
    drop(target, make_png("bad first scan"))
    clock = FakeClock()
    emulator.set_faults(Faults(task_error=1.0))
    with running_service(config, watch=False, clock=clock) as (service, store, _):
        tick_settled(service, clock.advance(0.5))
        assert store.jobs([JobState.SUBMITTED]), "the first scan's task is at the service"
        emulator.set_faults(Faults())  # the re-scan's task succeeds
        if how == "renamed_over":
            drop(target, make_png("good second scan"))
        else:
            with target.open("r+b") as handle:
                handle.truncate(0)
                handle.write(make_png("good second scan"))
        sidecar = tmp_path / "inbox" / "doc.png.txt"
        run_ticks(service, clock, step_seconds=0.5, until=sidecar.exists)
        run_ticks(service, clock, step_seconds=0.5, until=service.is_idle)
    assert sidecar.read_text() == "good second scan\n"
    assert target.exists(), "the new content stays where it was dropped (keep)"
    errors = tmp_path / "errors"
    assert not errors.exists() or not any(errors.iterdir()), "nothing went to the error folder"
    assert emulator_submits(emulator) == 2


def test_a_failed_task_of_an_unchanged_file_still_goes_to_the_error_folder(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    drop(tmp_path / "inbox" / "doc.png", make_png("bad scan"))
    clock = FakeClock()
    emulator.set_faults(Faults(task_error=1.0))
    with running_service(config, watch=False, clock=clock) as (service, _, _):
        reason_file = tmp_path / "errors" / "doc.png.error.json"
        run_ticks(service, clock, step_seconds=0.5, until=reason_file.exists)
    assert json.loads(reason_file.read_text())["class"] == "task_error"
    assert (tmp_path / "errors" / "doc.png").exists()


# ----------------------------------------------------------------- B.4 broken files


def test_broken_files_fail_as_incomplete_in_minutes_not_an_hour(
    tmp_path: Path, emulator: Emulator
) -> None:
    # The defaults (settle 5 s, max_settle 3600 s, and no incomplete_after_seconds given).
    config = write_config(
        tmp_path,
        emulator.base_url,
        defaults={},
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors"}],
    )
    inbox = tmp_path / "inbox"
    jpeg, pdf = make_jpeg("cut short"), make_pdf(["no end"])
    (inbox / "empty.png").touch()
    drop(inbox / "cut.jpg", jpeg[: len(jpeg) // 2])
    drop(inbox / "bad.pdf", pdf[: len(pdf) - 40])
    clock = FakeClock()
    errors = tmp_path / "errors"
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock) as (service, _, _),
    ):
        started = clock.now
        tick_settled(service, clock.advance(6.0))
        waiting = service.progress().waiting_for or ""
        assert "incomplete" in waiting or "empty file" in waiting, waiting
        run_ticks(
            service,
            clock,
            step_seconds=5.0,
            until=lambda: len(list(errors.glob("*.error.json"))) == 3,
            limit=120,  # ten minutes of fake time
        )
        # Failed once unchanged for the default incomplete_after_seconds (300 s), not before,
        # and not an hour later: within a few 5 s ticks of it.
        failed_after = clock.now - started
        assert 300.0 <= failed_after <= 300.0 + 20.0, failed_after
    reasons = {
        name: json.loads((errors / f"{name}.error.json").read_text())
        for name in ("empty.png", "cut.jpg", "bad.pdf")
    }
    assert {r["class"] for r in reasons.values()} == {"incomplete"}
    assert "empty file" in reasons["empty.png"]["message"]
    assert "JPEG" in reasons["cut.jpg"]["message"]
    assert "PDF" in reasons["bad.pdf"]["message"]
    assert emulator_submits(emulator) == 0
    waits = events(logs, "file_waiting_incomplete")
    assert {entry["path"] for entry in waits} == {
        str(inbox / name) for name in ("empty.png", "cut.jpg", "bad.pdf")
    }
    assert len(waits) <= 3 * 6, "logged while waiting, but not at every check"


def test_once_says_which_file_it_waits_for_and_why(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "settle_seconds": 0.2,
                "incomplete_after_seconds": 1.5,
            }
        ],
    )
    jpeg = make_jpeg("cut short")
    drop(tmp_path / "inbox" / "cut.jpg", jpeg[: len(jpeg) // 2])
    drop(tmp_path / "inbox" / "good.png", make_png("good"))
    result = run_once(config, timeout_seconds=120)
    assert result.returncode == 1, result.stderr
    assert "waiting for cut.jpg: incomplete JPEG (no end marker)" in result.stderr
    assert "1 done, 1 failed" in result.stderr
    reason = json.loads((tmp_path / "errors" / "cut.jpg.error.json").read_text())
    assert reason["class"] == "incomplete"
    assert (tmp_path / "inbox" / "good.png.txt").read_text() == "good\n"


# ----------------------------------------------------------------- E.9 Retry-After after a release


def test_no_poll_comes_before_its_retry_after_even_when_the_breaker_releases_the_queue(
    tmp_path: Path, emulator: Emulator
) -> None:
    # One upload and one poll at a time, so the fault each request meets is the one set
    # just before its tick.
    config = write_config(
        tmp_path,
        emulator.base_url,
        service={"breaker_threshold": 2, "upload_concurrency": 1, "poll_concurrency": 1},
    )
    for name in ("a", "b", "c"):
        drop(tmp_path / "inbox" / f"{name}.png", make_png(f"file {name}"))
    clock = FakeClock()
    with running_service(config, watch=False, clock=clock) as (service, store, _):
        run_ticks(
            service,
            clock,
            step_seconds=0.3,
            until=lambda: len(store.jobs([JobState.SUBMITTED])) == 3,
        )
        a, b, _c = sorted(
            store.jobs([JobState.SUBMITTED]), key=lambda job: job.next_attempt_at or 0
        )
        # a's poll meets a 429 with Retry-After 5 s; b's a 500, which opens the breaker.
        emulator.set_faults(Faults(too_many_requests=1.0, retry_after_seconds=5))
        clock.now = max(clock.now, a.next_attempt_at or 0.0)
        tick_settled(service, clock.now)
        throttled_at = clock.now
        assert store.get(a.id).http_status == 429
        emulator.set_faults(Faults(server_error=1.0))
        clock.now = max(clock.now, b.next_attempt_at or 0.0)
        tick_settled(service, clock.now)
        assert service.status_line().endswith("service unavailable, paused")
        # The service is back: b and c succeed, the breaker closes and releases the queue.
        emulator.set_faults(Faults())
        while clock.now < throttled_at + 5.0 - 0.1:
            tick_settled(service, clock.advance(0.1))
            if clock.now < throttled_at + 5.0:
                assert store.get(a.id).state is JobState.SUBMITTED, (
                    f"a was polled {clock.now - throttled_at:.2f} s after its Retry-After of 5 s"
                )
        assert not service.status_line().endswith("paused"), "the breaker closed meanwhile"
        run_ticks(service, clock, step_seconds=0.1, until=service.is_idle)
    assert (tmp_path / "inbox" / "a.png.txt").read_text() == "file a\n"


# ----------------------------------------------------------------- E.11 backoff while healthy


def test_while_the_service_answers_no_file_waits_more_than_a_few_seconds(
    tmp_path: Path, make_emulator: Any
) -> None:
    # Half the requests fail, the other half succeed: the service is demonstrably answering,
    # so however often one file is unlucky, it is tried again within a few seconds.
    emulator = make_emulator(seed=3, faults=Faults(server_error=0.5))
    config = write_config(
        tmp_path,
        emulator.base_url,
        service={"breaker_threshold": 50, "upload_concurrency": 1, "poll_concurrency": 1},
    )
    for n in range(8):
        drop(tmp_path / "inbox" / f"f{n}.png", make_png(f"file {n}"))
    clock = FakeClock()
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock) as (service, store, _),
    ):
        run_ticks(
            service,
            clock,
            step_seconds=0.25,
            until=lambda: store.count_by_state().get(JobState.DONE, 0) == 8,
            limit=2000,
        )
    retries = events(logs, "retry_scheduled")
    assert retries, "the faults struck"
    worst = max(entry["retry_in_seconds"] for entry in retries)
    assert worst <= HEALTHY_RETRY_CAP_SECONDS, f"a file was sent {worst} s away"


# ----------------------------------------------------------------- E.13 embedded restarts


def test_a_restart_in_embedded_mode_resubmits_without_consuming_attempts(
    tmp_path: Path, make_emulator: Any
) -> None:
    # max_attempts 1: the lost task's submission must not count, or the file fails.
    config = write_config(tmp_path, "embedded", service={"max_attempts": 1})
    source = drop(tmp_path / "inbox" / "scan.png", make_png("after a restart"))
    clock = FakeClock()
    # The first run's embedded server: the task is still being read when the daemon stops.
    first = make_emulator(processing_seconds=(60.0, 60.0))
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock, base_url=first.base_url) as (
            service,
            store,
            _,
        ),
    ):
        tick_settled(service, clock.advance(0.5))
        (submitted,) = store.jobs([JobState.SUBMITTED])
    first.stop()  # the embedded server ends with the daemon, and its tasks with it
    # The next run starts a new embedded server that never heard of that task.
    second = make_emulator()
    with (
        capture_logs() as more_logs,
        running_service(config, watch=False, clock=clock, base_url=second.base_url) as (
            service,
            store,
            _,
        ),
    ):
        run_ticks(service, clock, step_seconds=0.5, until=service.is_idle)
        (done,) = store.history(source)
        assert done.state is JobState.DONE
        assert done.attempts == 1, "the lost task's submission was not counted"
    assert (tmp_path / "inbox" / "scan.png.txt").read_text() == "after a restart\n"
    assert emulator_submits(second) == 1
    lost = events(logs + more_logs, "task_lost_with_embedded_service")
    assert [e["job_id"] for e in lost] == [submitted.id]


@contextmanager
def crashing_service(
    config: Path, clock: FakeClock, *, base_url: str
) -> Iterator[tuple[Service, Store]]:
    """A run that ends like a SIGKILL: started, then left without its graceful shutdown."""
    with running_service(config, watch=False, clock=clock, base_url=base_url, start=False) as (
        service,
        store,
        _,
    ):
        service.start()
        yield service, store


def test_a_file_in_flight_at_every_crash_of_an_embedded_daemon_ends_in_the_error_folder(
    tmp_path: Path, make_emulator: Any
) -> None:
    # A file that kills the daemon while the embedded engine reads it (out of memory on a
    # huge page, say) must not restart it forever: a crash, unlike a stop, costs an attempt.
    config = write_config(tmp_path, "embedded", service={"max_attempts": 2})
    source = drop(tmp_path / "inbox" / "poison.png", make_png("kills the engine"))
    clock = FakeClock()
    for crash in (1, 2):
        server = make_emulator(processing_seconds=(60.0, 60.0))
        with crashing_service(config, clock, base_url=server.base_url) as (service, store):
            run_ticks(
                service,
                clock,
                step_seconds=0.5,
                until=lambda: bool(store.jobs([JobState.SUBMITTED])),
            )
            (job,) = store.jobs([JobState.SUBMITTED])
            assert job.attempts == crash, "each crash with the file in flight cost one attempt"
        server.stop()
    last = make_emulator()
    with running_service(config, watch=False, clock=clock, base_url=last.base_url) as (
        service,
        store,
        _,
    ):
        run_ticks(service, clock, step_seconds=0.5, until=service.is_idle)
        (failed,) = store.history(source)
    assert failed.state is JobState.FAILED
    reason = json.loads((tmp_path / "errors" / "poison.png.error.json").read_text())
    assert reason["class"] == "attempts_exhausted"
    assert "stopped" in reason["message"]
    assert emulator_submits(last) == 0, "not submitted a third time"


# ----------------------------------------------------------------- E.10 recovery, end to end


def test_work_resumes_within_seconds_when_the_service_comes_back_flaky(
    tmp_path: Path, make_emulator: Any
) -> None:
    # The breaker's defaults; one request at a time, so the seeded faults strike in order.
    emulator = make_emulator(seed=5)
    config = write_config(
        tmp_path,
        emulator.base_url,
        service={"breaker_probe_seconds": None, "upload_concurrency": 1, "poll_concurrency": 1},
    )
    for n in range(6):
        drop(tmp_path / "inbox" / f"f{n}.png", make_png(f"file {n}"))
    emulator.stop()
    clock = FakeClock()
    with running_service(config, watch=False, clock=clock) as (service, store, _):
        outage_ends = clock.now + 12.0
        while clock.now < outage_ends:
            tick_settled(service, clock.advance(0.1))
        assert service.status_line().endswith("service unavailable, paused")
        assert not store.count_by_state().get(JobState.DONE)
        emulator.start()
        emulator.set_faults(Faults(server_error=0.2))
        back_at = clock.now
        run_ticks(
            service,
            clock,
            step_seconds=0.1,
            until=lambda: not service.status_line().endswith("paused"),
        )
        resumed_after = clock.now - back_at
        run_ticks(service, clock, step_seconds=0.1, until=service.is_idle, limit=2000)
        assert store.count_by_state().get(JobState.DONE) == 6
    print(f"resumed {resumed_after:.2f} s after the service was back")
    assert resumed_after <= 5.0, f"work resumed {resumed_after:.1f} s after the service was back"
    assert not (tmp_path / "errors").exists()


@pytest.mark.parametrize(
    ("status", "faults"),
    [
        (429, Faults(too_many_requests=1.0, retry_after_seconds=30)),
        # A gateway under maintenance answers 503 with Retry-After: as binding as a 429's.
        (503, Faults(server_error=1.0, unavailable_retry_after=True, retry_after_seconds=30)),
    ],
)
def test_a_restart_does_not_bring_a_poll_before_its_retry_after(
    tmp_path: Path, make_emulator: Any, status: int, faults: Faults
) -> None:
    emulator = make_emulator(seed=1)
    config = write_config(tmp_path, emulator.base_url, service={"breaker_threshold": 50})
    drop(tmp_path / "inbox" / "a.png", make_png("file a"))
    clock = FakeClock()
    with running_service(config, watch=False, clock=clock) as (service, store, _):
        tick_settled(service, clock.advance(0.5))
        (job,) = store.jobs([JobState.SUBMITTED])
        emulator.set_faults(faults)
        # Server errors vary (500, 502, 503, 504): poll until the one wanted comes.
        run_ticks(
            service, clock, step_seconds=0.5, until=lambda: store.get(job.id).http_status == status
        )
        throttled_at = clock.now
    emulator.set_faults(Faults())
    clock.advance(1.0)  # a quick restart
    polls_before = emulator.stats().fetches
    with running_service(config, watch=False, clock=clock) as (service, store, _):
        while clock.now < throttled_at + 30.0 - 0.5:
            tick_settled(service, clock.advance(0.5))
            assert emulator.stats().fetches == polls_before, (
                f"polled {clock.now - throttled_at:.1f} s after a Retry-After of 30 s"
            )
        run_ticks(service, clock, step_seconds=0.5, until=service.is_idle)
    assert (tmp_path / "inbox" / "a.png.txt").read_text() == "file a\n"


def test_after_a_long_outage_a_single_file_resumes_within_seconds(
    tmp_path: Path, make_emulator: Any
) -> None:
    # One file, five minutes of 5xx: its own backoff has grown to minutes by then, but the
    # breaker's probes, not the file's backoff, decide when the service is tried again.
    emulator = make_emulator(faults=Faults(server_error=1.0))
    config = write_config(tmp_path, emulator.base_url, service={"breaker_probe_seconds": None})
    drop(tmp_path / "inbox" / "a.png", make_png("file a"))
    clock = FakeClock()
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock) as (service, _, _),
    ):
        outage_ends = clock.now + 300.0
        while clock.now < outage_ends:
            tick_settled(service, clock.advance(0.5))
        assert service.status_line().endswith("service unavailable, paused")
        tries = sum(emulator.stats().faults.values())
        emulator.set_faults(Faults())
        back_at = clock.now
        sidecar = tmp_path / "inbox" / "a.png.txt"
        run_ticks(service, clock, step_seconds=0.5, until=sidecar.exists, limit=1000)
        resumed_after = clock.now - back_at
    assert resumed_after <= 5.0, f"resumed {resumed_after:.1f} s after the service was back"
    # At most one probe per breaker_probe_seconds while it was down (the first few sooner).
    assert tries <= 300 / 1.5 + 10
    assert sidecar.read_text() == "file a\n"
    # The outage is told once (breaker_opened), not once per probe in the journal.
    loud = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert len(loud) <= 10, [e["event"] for e in loud][:20]


def test_while_the_service_is_down_the_probes_are_polls_not_uploads(
    tmp_path: Path, make_emulator: Any
) -> None:
    # A task at the service and files waiting to be uploaded: a probe that is a GET costs a
    # service that answers 503 nothing, an upload costs it a whole file every probe.
    emulator = make_emulator(processing_seconds=(1000.0, 1000.0))
    config = write_config(tmp_path, emulator.base_url, service={"breaker_probe_seconds": None})
    drop(tmp_path / "inbox" / "first.png", make_png("at the service"))
    clock = FakeClock()
    with (
        capture_logs() as logs,
        running_service(config, watch=False, clock=clock) as (service, store, _),
    ):
        tick_settled(service, clock.advance(0.5))
        assert len(store.jobs([JobState.SUBMITTED])) == 1
        emulator.set_faults(Faults(server_error=1.0))
        for n in range(3):
            drop(tmp_path / "inbox" / f"later{n}.png", make_png(f"later {n}"))
        service.rescan(clock.now)  # no watcher here
        run_ticks(
            service, clock, step_seconds=0.5, until=lambda: service.status_line().endswith("paused")
        )
        opened = len(logs)
        outage_ends = clock.now + 120.0
        while clock.now < outage_ends:
            tick_settled(service, clock.advance(0.5))
        assert len(store.jobs([JobState.QUEUED])) == 3, "files were waiting to be uploaded"
    probes = [
        e
        for e in logs[opened:]
        if e["event"] == "api_request" and e["resource"] == "RecognizeImage"
    ]
    uploads = [e for e in probes if e["method"] == "POST"]
    assert len(probes) >= 40, "probed all along"
    assert not uploads, f"{len(uploads)} of {len(probes)} probes were uploads"
