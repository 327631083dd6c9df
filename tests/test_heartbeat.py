"""The heartbeat file and the container's health command: healthy only while the loop runs."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from daemon_harness import write_config
from daemon_process import clean_environment, daemon, wait_for

from ocrwatch.emulator import Emulator
from ocrwatch.heartbeat import INTERVAL_SECONDS, Heartbeat

REPO = Path(__file__).resolve().parent.parent
HEALTHCHECK = REPO / "container" / "healthcheck"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(heartbeat: Path, *, max_age_seconds: int = 60) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        OCRWATCH_HEARTBEAT_FILE=str(heartbeat),
        OCRWATCH_HEALTH_MAX_AGE=str(max_age_seconds),
    )
    return subprocess.run(
        ["sh", str(HEALTHCHECK)], env=env, capture_output=True, text=True, check=False
    )


def test_beats_are_rate_limited_and_replace_the_file_whole(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "heartbeat"
    heartbeat = Heartbeat(path, clock=clock)
    heartbeat.beat()
    first = path.read_text()
    os.utime(path, (0, 0))  # so any rewrite shows in the mtime
    clock.now += INTERVAL_SECONDS / 2
    heartbeat.beat()
    assert path.stat().st_mtime == 0, "a beat within the interval writes nothing"
    clock.now += INTERVAL_SECONDS / 2
    heartbeat.beat()
    assert path.stat().st_mtime > 0
    assert float(first) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heartbeat"]


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    heartbeat = Heartbeat.from_environ({"HOME": str(tmp_path)})
    assert heartbeat.path is None
    heartbeat.beat()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_heartbeat_never_stops_the_loop(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "missing-folder" / "heartbeat")
    heartbeat.beat()  # logged, not raised
    assert not (tmp_path / "missing-folder").exists()


def test_the_health_command_judges_the_age_of_the_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    missing = health(path)
    assert missing.returncode == 1
    assert "no heartbeat" in missing.stderr
    Heartbeat(path).beat()
    assert health(path).returncode == 0
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 90))
    stale = health(path)
    assert stale.returncode == 1
    assert "not refreshed" in stale.stderr
    assert health(path, max_age_seconds=120).returncode == 0


def test_a_stopped_daemon_turns_unhealthy_and_recovers_when_it_continues(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    path = tmp_path / "run" / "heartbeat"
    path.parent.mkdir()
    env = dict(clean_environment(), OCRWATCH_HEARTBEAT_FILE=str(path))
    # Beats come every INTERVAL_SECONDS; allow two of them.
    max_age = int(2 * INTERVAL_SECONDS)
    with daemon(config, tmp_path / "daemon.log", env=env) as running:
        wait_for(lambda: health(path, max_age_seconds=max_age).returncode == 0, what="healthy")
        os.kill(running.pid, signal.SIGSTOP)  # alive, but its loop makes no progress
        try:
            wait_for(
                lambda: health(path, max_age_seconds=max_age).returncode == 1,
                timeout_seconds=max_age + 30,
                what="unhealthy while stopped",
            )
            assert running.is_running
        finally:
            os.kill(running.pid, signal.SIGCONT)
        wait_for(lambda: health(path, max_age_seconds=max_age).returncode == 0, what="healthy")
        assert running.terminate() == 0
