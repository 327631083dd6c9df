"""The ``ocrwatch`` command as a real subprocess: exit codes, signals, crash recovery, status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from daemon_harness import emulator_submits, write_config

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.model import JobState
from ocrwatch.store import Store

MakeEmulator = Callable[..., Emulator]


def ocrwatch(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def daemon(config: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def wait_for(condition: Callable[[], bool], *, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_seconds} s")
        time.sleep(0.05)


def test_every_config_error_exits_78_with_its_key_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {"max_in_flight": 0, "client_secret": "plain"},
                "inboxes": [
                    {"name": "a", "path": "missing", "language": "Englsh", "mode": "fax"},
                ],
            }
        )
    )
    result = ocrwatch("check", "-c", str(config))
    assert result.returncode == 78
    for fragment in ("max_in_flight", "client_secret", "Englsh", "mode", "missing"):
        assert fragment in result.stderr


def test_check_prints_the_resolved_profiles_without_the_secret(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    result = ocrwatch("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "test-secret" not in result.stdout + result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["inboxes"][0]["name"] == "scans"


def test_once_processes_everything_and_reports_failures(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "inbox" / "good.png").write_bytes(make_png("all good"))
    (tmp_path / "inbox" / "junk.png").write_bytes(b"not an image at all")
    result = ocrwatch("once", "-c", str(config))
    assert result.returncode == 1, result.stderr
    assert "1 done, 1 failed" in result.stderr
    assert (tmp_path / "inbox" / "good.png.txt").read_text() == "all good\n"
    assert (tmp_path / "errors" / "junk.png.error.json").exists()

    status = ocrwatch("status", "-c", str(config), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)[0]
    assert report["counts"]["done"] == 1 and report["counts"]["failed"] == 1
    assert report["in_error_folder"] == 1
    assert report["last_errors"][0]["class"] == "unreadable"

    assert report["state_path"] == str(tmp_path / "state" / "state.db")
    # The failed file is in the error folder now: that is where status sends the reader.
    assert report["last_errors"][0]["path"] == str(tmp_path / "errors" / "junk.png")
    assert report["last_errors"][0]["came_from"] == str(tmp_path / "inbox" / "junk.png")
    text = ocrwatch("status", "-c", str(config))
    assert f"  error: {tmp_path / 'errors' / 'junk.png'} (from inbox/junk.png): " in text.stdout

    retry = ocrwatch("retry", "-c", str(config), "--all")
    assert retry.returncode == 0, retry.stderr
    assert (tmp_path / "inbox" / "junk.png").exists()
    assert not (tmp_path / "errors" / "junk.png.error.json").exists()


def test_status_says_what_an_incomplete_waiting_file_waits_for(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", credentials=False)
    truncated = tmp_path / "inbox" / "truncated.png"
    truncated.write_bytes(make_png("cut short")[:-20])
    with Store.open(tmp_path / "state" / "state.db") as store:  # as the daemon records it
        store.add_job(inbox="scans", path=truncated, profile_hash="p", now=time.time())
    report = json.loads(ocrwatch("status", "-c", str(config), "--json").stdout)[0]
    assert report["oldest_waiting"]["state"] == "settling"
    assert report["oldest_waiting"]["waiting_for"] == "incomplete PNG (no IEND chunk)"
    text = ocrwatch("status", "-c", str(config)).stdout
    assert f"oldest waiting: {truncated} (settling: incomplete PNG (no IEND chunk), " in text


def test_two_configs_sharing_a_state_file_never_see_or_reuse_each_others_files(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Both name their inbox ``scans`` (the example config and one from ``ocrwatch init``)."""
    shared = tmp_path / "shared-state.db"
    configs = []
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        config = write_config(tmp_path / side, emulator.base_url, state={"path": str(shared)})
        configs.append(config)
        (tmp_path / side / "inbox" / "same.png").write_bytes(make_png("same page"))
    first = ocrwatch("once", "-c", str(configs[0]))
    assert first.returncode == 0, first.stderr
    status = ocrwatch("status", "-c", str(configs[1]), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["counts"]["done"] == 0  # a's file is not b's
    second = ocrwatch("once", "-c", str(configs[1]))
    assert second.returncode == 0, second.stderr
    assert emulator_submits(emulator) == 2  # b's copy was recognised, not a's result reused
    assert (tmp_path / "b" / "inbox" / "same.png.txt").read_text() == "same page\n"


def test_sigterm_stops_within_ten_seconds_and_pending_tasks_resume(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(3.0, 3.0), slots=8)
    config = write_config(tmp_path, emulator.base_url)
    for n in range(3):
        (tmp_path / "inbox" / f"p{n}.png").write_bytes(make_png(f"pending {n}"))
    with daemon(config) as process:
        wait_for(lambda: emulator_submits(emulator) == 3)
        status = ocrwatch("status", "-c", str(config))
        assert status.returncode == 0, status.stderr
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    with Store.open(tmp_path / "state" / "state.db", readonly=True) as store:
        rows = store.jobs([JobState.SUBMITTED])
        assert len(rows) == 3 and all(row.task_id for row in rows)
    result = ocrwatch("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert emulator_submits(emulator) == 3, "pending tasks were polled, not resubmitted"
    for n in range(3):
        assert (tmp_path / "inbox" / f"p{n}.png.txt").read_text() == f"pending {n}\n"


def test_sigkill_between_post_and_task_id_record_resubmits_once(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # The server creates the task and then sits on its answer: the daemon has POSTed but has
    # not learned the task id when it is killed.
    emulator = make_emulator(faults=Faults(latency_seconds=(30.0, 30.0)))
    config = write_config(tmp_path, emulator.base_url, service={"read_timeout_seconds": 60})
    (tmp_path / "inbox" / "victim.png").write_bytes(make_png("killed mid-flight"))
    with daemon(config) as process:
        wait_for(lambda: emulator_submits(emulator) == 1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    with Store.open(tmp_path / "state" / "state.db", readonly=True) as store:
        (row,) = store.jobs([JobState.SUBMITTING])
        assert row.task_id is None
    emulator.set_faults(Faults())
    result = ocrwatch("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert emulator_submits(emulator) == 2, "resubmitted exactly once"
    assert (tmp_path / "inbox" / "victim.png.txt").read_text() == "killed mid-flight\n"
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == [
        "victim.png",
        "victim.png.txt",
    ]


def test_run_without_a_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = ocrwatch("run", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 78
    assert "nope.yaml" in result.stderr


def test_check_refuses_a_language_the_local_engine_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {"url": "embedded"},
                "state": {"path": str(tmp_path / "state.db")},
                "inboxes": [{"name": "ru", "path": "inbox", "language": "Russian"}],
            }
        )
    )
    result = ocrwatch("check", "-c", str(config))
    assert result.returncode == 78
    assert "cannot read Russian" in result.stderr
    assert "English" in result.stderr, "the message lists what it can read"
