"""Reloading the config on SIGHUP: validate, swap, keep the old one on error; jobs keep profiles."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon_harness import emulator_submits, run_until, running_service, write_config
from daemon_process import Daemon, daemon, wait_for

from ocrwatch.config import load_config
from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.model import Job, JobState
from ocrwatch.reload import Profiles, effective_config, restart_only_changes

MakeEmulator = Callable[..., Emulator]


def inbox(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": "scans", "path": "inbox", "error_dir": "errors", **extra}]


def named(running: Daemon, name: str) -> list[dict[str, Any]]:
    return [event for event in running.events() if event.get("event") == name]


def hangup_and_wait(running: Daemon, event: str) -> None:
    before = len(named(running, event))
    running.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(named(running, event)) > before)


# --- through the CLI --------------------------------------------------------------------------


def test_sighup_applies_new_result_types_to_new_files(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["text"]))
    drop = tmp_path / "inbox"
    with daemon(config, tmp_path / "daemon.log") as running:
        running.wait_for_event("daemon_ready")
        (drop / "before.png").write_bytes(make_png("before the reload"))
        wait_for((drop / "before.png.txt").exists)

        write_config(
            tmp_path,
            emulator.base_url,
            inboxes=inbox(result_types=["text", "hocr"]),
            service={"max_in_flight": 3},  # only a restart can change this
        )
        hangup_and_wait(running, "config_reloaded")
        (drop / "after.png").write_bytes(make_png("after the reload"))
        wait_for(lambda: (drop / "after.png.hocr").exists() and (drop / "after.png.txt").exists())

        assert running.is_running()
    assert (drop / "after.png.txt").read_text() == "after the reload\n"
    assert not (drop / "before.png.hocr").exists()
    (reloaded,) = named(running, "config_reloaded")
    assert reloaded["changed"] == ["scans"] and reloaded["restart_needed_for"] == ["service"]
    (restart,) = named(running, "config_reload_needs_restart")
    assert restart["sections"] == ["service"]


def test_sighup_with_a_broken_config_keeps_the_old_one_running(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["text"]))
    drop = tmp_path / "inbox"
    with daemon(config, tmp_path / "daemon.log") as running:
        running.wait_for_event("daemon_ready")
        write_config(tmp_path, emulator.base_url, inboxes=inbox(language="Englsh"))
        hangup_and_wait(running, "config_reload_failed")
        config.write_text("inboxes: [unclosed\n")
        hangup_and_wait(running, "config_reload_failed")

        (drop / "still.png").write_bytes(make_png("old config still in force"))
        wait_for((drop / "still.png.txt").exists)
        assert running.is_running(), "a broken config never stops the daemon"
    first, second = named(running, "config_reload_failed")
    assert any("Englsh" in problem for problem in first["problems"])
    assert any("not valid YAML" in problem for problem in second["problems"])
    assert not named(running, "config_reloaded")
    assert (drop / "still.png.txt").read_text() == "old config still in force\n"


def test_a_task_in_flight_keeps_the_profile_it_started_with(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(4.0, 4.0))
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["text"]))
    drop = tmp_path / "inbox"
    with daemon(config, tmp_path / "daemon.log") as running:
        running.wait_for_event("daemon_ready")
        (drop / "early.png").write_bytes(make_png("submitted under the old profile"))
        wait_for(lambda: emulator_submits(emulator) == 1)
        write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["text", "hocr"]))
        hangup_and_wait(running, "config_reloaded")
        (drop / "late.png").write_bytes(make_png("found under the new profile"))
        wait_for(lambda: (drop / "late.png.hocr").exists() and (drop / "early.png.txt").exists())
    events = [e["event"] for e in running.events()]
    assert events.index("config_reloaded") < events.index("task_completed"), "reloaded mid-task"
    assert (drop / "early.png.txt").read_text() == "submitted under the old profile\n"
    assert not (drop / "early.png.hocr").exists()
    (reloaded,) = named(running, "config_reloaded")
    assert reloaded["jobs_keeping_old_profile"] == 1


# --- in process -------------------------------------------------------------------------------


def test_removing_an_inbox_drops_its_unpaid_files_and_finishes_its_tasks(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(1.0, 1.0))
    (tmp_path / "other").mkdir()
    both = [
        {"name": "scans", "path": "inbox", "error_dir": "errors"},
        {"name": "other", "path": "other", "error_dir": "other-errors", "settle_seconds": 30},
    ]
    config_path = write_config(tmp_path, emulator.base_url, inboxes=both)
    with running_service(config_path) as (service, store, _):
        (tmp_path / "inbox" / "paid.png").write_bytes(make_png("finished anyway"))
        (tmp_path / "other" / "unpaid.png").write_bytes(make_png("never sent"))
        run_until(service, lambda: len(store.jobs([JobState.SUBMITTED])) == 1)
        run_until(service, lambda: len(store.jobs([JobState.SETTLING])) == 1)
        # Remove both inboxes' entries: keep only a renamed copy of "scans".
        write_config(
            tmp_path,
            emulator.base_url,
            inboxes=[{"name": "renamed", "path": "inbox", "error_dir": "errors"}],
        )
        assert service.reload(service.now())
        assert not store.jobs([JobState.SETTLING]), "the unpaid file of a removed inbox is dropped"
        run_until(service, (tmp_path / "inbox" / "paid.png.txt").exists)
        assert set(service.inboxes) == {"renamed"}
    assert (tmp_path / "inbox" / "paid.png.txt").read_text() == "finished anyway\n"
    assert not (tmp_path / "other" / "unpaid.png.txt").exists()


def test_reload_refuses_an_invalid_file_in_process(tmp_path: Path, emulator: Emulator) -> None:
    config_path = write_config(tmp_path, emulator.base_url)
    with running_service(config_path, watch=False) as (service, _, config):
        config_path.write_text("inboxes: []\n")
        assert not service.reload(service.now())
        assert service.config is config
        assert service.metrics.value("ocrwatch_config_reloads_total", result="failed") == 1


def job(job_id: int, inbox_name: str, state: JobState) -> Job:
    return Job(id=job_id, inbox=inbox_name, path=Path(f"/x/{job_id}"), state=state, profile_hash="")


def test_profiles_pin_changed_jobs_and_release_them(tmp_path: Path, emulator: Emulator) -> None:
    old_path = write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["text"]))
    old = load_config(old_path, environ={})
    new = load_config(
        write_config(tmp_path, emulator.base_url, inboxes=inbox(result_types=["hocr"])),
        environ={},
    )
    profiles = Profiles(old.inboxes)
    swap = profiles.swap(new.inboxes, [job(1, "scans", JobState.SUBMITTED)])
    assert swap.pinned == 1 and swap.changed == ("scans",)
    assert profiles.for_job(job(1, "scans", JobState.SUBMITTED)) == old.inboxes[0]
    assert profiles.for_job(job(2, "scans", JobState.SETTLING)) == new.inboxes[0]
    profiles.release(1)
    assert profiles.for_job(job(1, "scans", JobState.SUBMITTED)) == new.inboxes[0]

    gone = profiles.swap((), [job(3, "scans", JobState.QUEUED), job(4, "scans", JobState.WRITING)])
    assert [j.id for j in gone.orphaned] == [3]
    assert gone.removed == ("scans",) and profiles.names() == ["scans"]  # job 4 still has work
    assert profiles.for_job(job(4, "scans", JobState.WRITING)) == new.inboxes[0]


def test_only_a_restart_changes_the_service_state_logging_and_metrics(
    tmp_path: Path, emulator: Emulator
) -> None:
    old = load_config(write_config(tmp_path, emulator.base_url), environ={})
    new = load_config(
        write_config(
            tmp_path,
            emulator.base_url,
            service={"max_in_flight": 2},
            state={"path": str(tmp_path / "elsewhere.db")},
            logging={"level": "debug"},
            metrics={"listen": ":0"},
            rescan_interval_seconds=7,
        ),
        environ={},
    )
    assert restart_only_changes(old, new) == ["service", "state.path", "logging", "metrics"]
    effective = effective_config(old, new)
    assert (effective.service, effective.state_path, effective.metrics) == (
        old.service,
        old.state_path,
        old.metrics,
    )
    assert effective.rescan_interval_seconds == 7
