"""Daemon defects found by independent fault runs, each driven on a fake clock with ``tick(now)``.

The service runs against the real emulator over HTTP with the real client and SQLite; only
the clock is fake. ``tick_settled`` waits for the calls a tick started before applying them
at the same fake moment, so each scenario's times are exact whatever the machine's load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import (
    FakeClock,
    emulator_submits,
    running_service,
    tick_settled,
    write_config,
)
from structlog.testing import capture_logs

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.model import JobState
from ocrwatch.service import Service
from ocrwatch.store import Store


def drop(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)
    return path


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
    assert sidecar.read_text() == "good second scan"
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
