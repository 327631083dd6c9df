"""The real ``ocrwatch`` daemon as a subprocess: start, watch its log, sample its memory, kill.

Its stdout and stderr go to a log file (appended across restarts), so nothing is lost when it
is SIGKILLed and no pipe can fill up and stall it. Every process started here is killed and
reaped when its ``with`` block ends, whatever happened inside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 60.0


def wait_for(
    condition: Callable[[], object],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    interval_seconds: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll ``condition`` until it is true and return its value; fail with ``what`` at the
    deadline."""
    deadline = time.monotonic() + timeout_seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_seconds} s")
        time.sleep(interval_seconds)
    return value


def ocrwatch_command(
    command: str, config: Path, *, log_level: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    level = ["--log-level", log_level] if log_level else []
    return [
        sys.executable,
        "-m",
        "ocrwatch",
        "--log-format",
        "json",
        *level,
        command,
        "-c",
        str(config),
        *extra,
    ]


class Daemon:
    """One running ``ocrwatch run`` process and the log file it writes to."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, log_offset: int) -> None:
        self.process = process
        self.log_path = log_path
        self._log_offset = log_offset  # where this process's output starts in the file

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """What this process has logged so far (stdout and stderr, undecodable bytes escaped)."""
        with self.log_path.open("rb") as file:
            file.seek(self._log_offset)
            return file.read().decode("utf-8", "backslashreplace")

    def events(self) -> list[dict[str, Any]]:
        """This process's JSON log lines, parsed (other lines are skipped)."""
        found = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # the last line of a killed process may be cut short
        return found

    def has_logged(self, event: str) -> bool:
        return f'"event": "{event}"' in self.log_text()

    def wait_for_event(
        self, event: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        def seen() -> bool:
            if not self.is_running() and not self.has_logged(event):
                raise AssertionError(
                    f"the daemon exited before {event}:\n{self.log_text()[-4000:]}"
                )
            return self.has_logged(event)

        wait_for(seen, timeout_seconds=timeout_seconds, what=f"daemon event {event}")

    def memory_kib(self) -> tuple[int, int] | None:
        """(VmRSS, VmHWM) in KiB from /proc, or None once the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        try:
            return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
        except (KeyError, ValueError, IndexError):
            return None  # a zombie has no memory lines

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, *, timeout_seconds: float = 30.0) -> int:
        """SIGTERM, wait for the exit and return its code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_seconds)


@contextmanager
def daemon(
    config: Path,
    log_path: Path,
    *,
    log_level: str | None = None,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Daemon]:
    """Run ``ocrwatch run -c config``; killed and reaped when the block ends.

    ``prefix`` is a command that execs the rest (to run the daemon with fewer privileges).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            [*prefix, *ocrwatch_command("run", config, log_level=log_level)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_environment() if env is None else env,
        )
    running = Daemon(process, log_path, offset)
    try:
        yield running
    finally:
        running.kill()


def run_once(
    config: Path, *, timeout_seconds: float = 180.0, log_level: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``ocrwatch once -c config``: process what is there, wait for it, exit."""
    return subprocess.run(
        ocrwatch_command("once", config, log_level=log_level),
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout_seconds,
        check=False,
        stdin=subprocess.DEVNULL,
        env=clean_environment(),
    )


def ocrwatch_cli(*args: str, timeout_seconds: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout_seconds,
        check=False,
        stdin=subprocess.DEVNULL,
        env=clean_environment(),
    )


def clean_environment() -> dict[str, str]:
    """The test's environment minus anything that would give the daemon other credentials."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OCRWATCH_") and k != "CREDENTIALS_DIRECTORY"
    }
