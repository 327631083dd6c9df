"""The daemon under adverse conditions: restarts, renamed inboxes, failing folders, throttling."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from daemon_harness import emulator_submits, run_until, running_service, write_config

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.model import JobState

MakeEmulator = Callable[..., Emulator]


class CountingNotifier:
    """Counts the loop's watchdog pings: one per iteration of the main loop."""

    def __init__(self) -> None:
        self.pings = 0

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        self.pings += 1

    def stopping(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def reloaded(self, *, ok: bool, problems: object = ()) -> None:
        pass


def drop(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)


def test_the_loop_sleeps_while_every_poll_slot_is_busy(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # Tasks that answer slowly keep the single poll slot busy while other tasks are overdue:
    # the loop must wait for a slot, not spin.
    emulator = make_emulator(processing_seconds=(0.3, 0.3), faults=Faults(latency_seconds=(1, 1)))
    config = write_config(tmp_path, emulator.base_url, service={"poll_concurrency": 1})
    for n in range(4):
        (tmp_path / "inbox" / f"slow{n}.png").write_bytes(make_png(f"slow {n}"))
    notifier = CountingNotifier()
    with running_service(config, notifier=notifier, start=False, watch=False) as (
        service,
        store,
        _,
    ):
        summary = service.run(until_idle=True)  # the real main loop, on this thread
        assert summary.done == 4
        assert store.count_by_state()[JobState.DONE] == 4
    # Measured before the fix: thousands of iterations per second. A sleeping loop wakes on
    # events, worker outcomes and due times only.
    assert notifier.pings < 400, f"{notifier.pings} loop iterations: the loop is spinning"


def test_a_restart_after_downtime_does_not_teach_a_huge_processing_time(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(0.2, 0.2))
    config = write_config(tmp_path, emulator.base_url)
    drop(tmp_path / "inbox" / "before.png", make_png("before the downtime"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: bool(store.jobs([JobState.SUBMITTED])))
    # The daemon comes back an hour later (its clock says so).
    later = 3600.0
    with running_service(config, clock=lambda: time.time() + later) as (service, store, _):
        run_until(service, (tmp_path / "inbox" / "before.png.txt").exists)
        drop(tmp_path / "inbox" / "after.png", make_png("after the downtime"))
        run_until(service, lambda: bool(store.jobs([JobState.SUBMITTED])))
        (job,) = store.jobs([JobState.SUBMITTED])
        assert job.submitted_at is not None and job.next_attempt_at is not None
        first_poll_in = job.next_attempt_at - job.submitted_at
        assert first_poll_in < 10, f"first poll planned {first_poll_in:.0f} s after submission"
        run_until(service, (tmp_path / "inbox" / "after.png.txt").exists)


def test_files_of_a_renamed_inbox_are_picked_up_under_its_new_name(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(2.0, 2.0))
    config = write_config(tmp_path, emulator.base_url)
    drop(tmp_path / "inbox" / "moved.png", make_png("renamed inbox"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: bool(store.jobs([JobState.SUBMITTED])))
    document = yaml.safe_load(config.read_text())
    document["inboxes"][0]["name"] = "documents"
    config.write_text(yaml.safe_dump(document))
    with running_service(config) as (service, store, _):
        run_until(service, (tmp_path / "inbox" / "moved.png.txt").exists, timeout_seconds=30)
        run_until(service, service.is_idle)
        assert store.count_by_state()[JobState.DONE] == 1
    assert (tmp_path / "inbox" / "moved.png.txt").read_text() == "renamed inbox\n"


def test_an_inbox_removed_and_recreated_while_running(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url, rescan_interval_seconds=0.5)
    inbox = tmp_path / "inbox"
    with running_service(config) as (service, _, _):
        drop(inbox / "first.png", make_png("first"))
        run_until(service, (inbox / "first.png.txt").exists)
        shutil.rmtree(inbox)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # rescans of a missing inbox must not crash
            service.tick(time.time())
            time.sleep(0.05)
        inbox.mkdir()
        drop(inbox / "second.png", make_png("second"))
        run_until(service, (inbox / "second.png.txt").exists, timeout_seconds=30)
    assert (inbox / "second.png.txt").read_text() == "second\n"


def test_a_file_that_never_completes_with_settle_zero_goes_to_the_error_folder(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "settle_seconds": 0,
                "max_settle_seconds": 1.5,
            }
        ],
    )
    data = make_png("cut short")
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "cut.png", data[: len(data) // 2])
        run_until(service, (tmp_path / "errors" / "cut.png.error.json").exists)
    reason = json.loads((tmp_path / "errors" / "cut.png.error.json").read_text())
    assert reason["class"] == "never_settled"
    assert emulator_submits(emulator) == 0


def test_a_done_folder_that_cannot_be_used_never_sends_a_done_file_to_errors(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "on_success": "move",
                "done_dir": "done",
            }
        ],
    )
    (tmp_path / "done").write_text("a file where the done folder should be")
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "keep.png", make_png("sidecar first"))
        run_until(service, (tmp_path / "inbox" / "keep.png.txt").exists)
        run_until(service, lambda: store.count_by_state()[JobState.DISPOSING] == 1)
        assert (tmp_path / "inbox" / "keep.png").exists()
        assert not (tmp_path / "errors").exists()
        (tmp_path / "done").unlink()
        # The postponed move is retried: bring its time forward instead of waiting a minute.
        run_until(service, lambda: _retry_due_disposals(service, store))
    assert (tmp_path / "done" / "keep.png").exists()


def _retry_due_disposals(service: Any, store: Any) -> bool:
    for job in store.jobs([JobState.DISPOSING]):
        store.update(job.id, now=time.time(), next_attempt_at=time.time())
    return bool(store.count_by_state()[JobState.DONE] == 1)


def test_an_api_rejection_goes_to_the_error_folder_with_its_status(
    tmp_path: Path, emulator: Emulator
) -> None:
    # Rotate beyond int32: valid YAML and a valid integer, refused by the service (400).
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "rotate": 2**32}],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "turn.png", make_png("too far"))
        run_until(service, (tmp_path / "errors" / "turn.png.error.json").exists)
    reason = json.loads((tmp_path / "errors" / "turn.png.error.json").read_text())
    assert reason["class"] == "rejected"
    assert reason["http_status"] == 400


def test_throttling_and_server_errors_only_delay_files(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(
        seed=7,
        faults=Faults(too_many_requests=0.15, server_error=0.15, retry_after_seconds=1),
    )
    config = write_config(tmp_path, emulator.base_url, service={"breaker_threshold": 50})
    with running_service(config) as (service, store, _):
        for n in range(8):
            drop(tmp_path / "inbox" / f"t{n}.png", make_png(f"throttled {n}"))
        run_until(service, lambda: store.count_by_state()[JobState.DONE] == 8, timeout_seconds=120)
    stats = emulator.stats()
    assert stats.faults.get("too_many_requests", 0) > 0
    assert stats.faults.get("server_error", 0) > 0
    assert not (tmp_path / "errors").exists()


def test_reprocess_policy_calls_the_api_again_for_the_same_content(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "duplicates": "reprocess"}],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "one.png", make_png("again"))
        run_until(service, (tmp_path / "inbox" / "one.png.txt").exists)
        drop(tmp_path / "inbox" / "two.png", (tmp_path / "inbox" / "one.png").read_bytes())
        run_until(service, (tmp_path / "inbox" / "two.png.txt").exists)
    assert emulator_submits(emulator) == 2
