"""The client under test as a subprocess: its config, its readiness, its log, its end.

``write_config`` writes the daemon's YAML for one run (state in the run's folder, one inbox,
a small ``settle_seconds``); ``ClientProcess`` runs any command (the daemon, or the baseline
client) with its stdout and stderr appended to a log file, so no pipe can fill up and stall
it. The daemon speaks sd_notify: the harness binds a datagram socket, passes it as
``$NOTIFY_SOCKET`` and stamps the ``READY=1`` datagram on arrival, which is how start-up
time is measured. Every process started here is killed and reaped when its block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"  # the bench server hands a token to any pair


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """The knobs of the daemon that a run states in its results."""

    settle_seconds: float = 0.5
    max_in_flight: int = 32
    upload_concurrency: int = 4
    poll_concurrency: int = 4
    use_status_probe: bool = False
    log_level: str = "info"


def write_config(
    root: Path, base_url: str, settings: DaemonSettings, *, inbox: Path | None = None
) -> Path:
    """A config for one inbox ``root/inbox`` (unless given); returns its path."""
    inbox = inbox or root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    secret = root / "client_secret"
    secret.write_text(CLIENT_SECRET)
    secret.chmod(0o600)
    document: dict[str, Any] = {
        "service": {
            "url": base_url,
            "client_id": CLIENT_ID,
            "client_secret_file": str(secret),
            "connect_timeout_seconds": 5,
            "read_timeout_seconds": 120,
            "max_in_flight": settings.max_in_flight,
            "upload_concurrency": settings.upload_concurrency,
            "poll_concurrency": settings.poll_concurrency,
            "use_status_probe": settings.use_status_probe,
        },
        "state": {"path": str(root / "state" / "state.db")},
        "logging": {"level": settings.log_level, "format": "json"},
        "defaults": {"settle_seconds": settings.settle_seconds},
        "inboxes": [{"name": "bench", "path": str(inbox), "error_dir": str(root / "errors")}],
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def daemon_command(config: Path, *, log_level: str = "info") -> list[str]:
    return [
        sys.executable,
        "-m",
        "ocrwatch",
        "--log-format",
        "json",
        "--log-level",
        log_level,
        "run",
        "-c",
        str(config),
    ]


class ClientProcess:
    """One client process with a sd_notify socket; a context manager that always reaps it."""

    def __init__(
        self, command: Sequence[str], *, log_path: Path, workdir: Path, cwd: Path | None = None
    ) -> None:
        self.command = list(command)
        self._cwd = cwd
        self.log_path = log_path
        self._socket_path = workdir / "notify.sock"
        self._socket: socket.socket | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_at: float | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> ClientProcess:
        self._socket_path.unlink(missing_ok=True)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(self._socket_path))
        self._socket.settimeout(0.2)
        self._reader = threading.Thread(target=self._read_notify, name="notify", daemon=True)
        self._reader.start()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OCRWATCH_", "WATCHDOG_", "JOURNAL_", "NOTIFY_"))
            and k != "CREDENTIALS_DIRECTORY"
        }
        env["NOTIFY_SOCKET"] = str(self._socket_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._cwd,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._socket_path.unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, *, timeout_seconds: float) -> float:
        """Seconds from process start to READY=1; raises if it exits or times out first."""
        deadline = time.monotonic() + timeout_seconds
        while not self._ready.wait(0.1):
            if not self.is_running():
                raise RuntimeError(f"{self.command[2:4]} exited before READY; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no READY=1 within {timeout_seconds} s; see {self.log_path}")
        assert self.ready_at is not None
        return self.ready_at - self.started_at

    def terminate(self, *, timeout_seconds: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self._process is None:
            return -1
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
        return self._process.returncode

    def kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self.returncode = self._process.wait(timeout=30)

    def events(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The log's JSON events named in ``names`` (in order)."""
        wanted = set(names)
        found = []
        with contextlib.suppress(OSError), self.log_path.open("rb") as file:
            for raw in file:
                if not raw.startswith(b"{"):
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if event.get("event") in wanted:
                    found.append(event)
        return found

    def _read_notify(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            if b"READY=1" in data.split(b"\n") and not self._ready.is_set():
                self.ready_at = at
                self._ready.set()
