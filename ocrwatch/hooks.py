"""Run an inbox's hooks (a command, a webhook POST) when one of its files is done or has failed.

The control thread only calls ``submit``, which puts the event on a bounded queue and returns
at once: a slow, hanging or failing hook never holds up the pipeline. Two background threads
run the hooks; if the queue is full (hooks far slower than files), the event is dropped and
logged. Every outcome is logged and counted through ``on_result``.

Hazards, and what covers them:

- A command that never ends: each runs in its own session with ``timeout_seconds``; on
  timeout its whole process group is killed. Its output goes to a temporary file (never a
  pipe a grandchild could hold open), and its tail is logged if it fails.
- Secrets: a command gets a fixed, small environment (PATH, HOME, LANG, LC_*, TZ and the
  ``OCRWATCH_*`` facts), never the daemon's own, which may hold the client secret. A webhook
  URL may itself carry a token, so only its host is ever logged.
- No shell: commands are argv lists, so file names cannot inject anything.
- Shutdown: ``close`` waits briefly for running hooks, then kills what is left; queued events
  that never ran are logged as dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal
from urllib.parse import urlsplit

import requests
import structlog

from ocrwatch.config import HookConfig

log = structlog.get_logger(__name__)

WORKERS = 2
QUEUE_LIMIT = 1000
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_SECONDS = (1.0, 4.0)
OUTPUT_TAIL_BYTES = 2048
_PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "TZ")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

Event = Literal["success", "failure"]
OnResult = Callable[[str, str, str], None]  # (inbox, hook, result), from a hook thread


@dataclass(frozen=True, slots=True)
class HookEvent:
    """The facts a hook receives about one finished file."""

    event: Event
    inbox: str
    job_id: int
    source: Path  # where the file was found
    final_path: Path | None  # where it is now; None if deleted
    sidecars: tuple[Path, ...] = ()
    task_id: str | None = None
    error_class: str | None = None
    error: str | None = None
    reason_file: Path | None = None
    profile_hash: str = ""
    at: float = 0.0

    def environment(self) -> dict[str, str]:
        values = {
            "OCRWATCH_EVENT": self.event,
            "OCRWATCH_INBOX": self.inbox,
            "OCRWATCH_JOB_ID": str(self.job_id),
            "OCRWATCH_SOURCE": os.fspath(self.source),
            "OCRWATCH_FINAL_PATH": "" if self.final_path is None else os.fspath(self.final_path),
            "OCRWATCH_SIDECARS": "\n".join(os.fspath(p) for p in self.sidecars),
            "OCRWATCH_TASK_ID": self.task_id or "",
            "OCRWATCH_ERROR_CLASS": self.error_class or "",
            "OCRWATCH_ERROR": self.error or "",
            "OCRWATCH_REASON_FILE": "" if self.reason_file is None else os.fspath(self.reason_file),
            "OCRWATCH_PROFILE_HASH": self.profile_hash,
        }
        return {key: value.replace("\0", "") for key, value in values.items()}

    def body(self) -> dict[str, object]:
        return {
            "event": self.event,
            "inbox": self.inbox,
            "job_id": self.job_id,
            "source": os.fspath(self.source),
            "final_path": None if self.final_path is None else os.fspath(self.final_path),
            "sidecars": [os.fspath(p) for p in self.sidecars],
            "task_id": self.task_id,
            "error_class": self.error_class,
            "error": self.error,
            "reason_file": None if self.reason_file is None else os.fspath(self.reason_file),
            "profile_hash": self.profile_hash,
            "at": datetime.fromtimestamp(self.at, tz=UTC).isoformat(timespec="seconds"),
        }


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of the daemon's environment a hook may see: locale, time zone, PATH, HOME."""
    passed = {k: v for k, v in environ.items() if k in _PASSED_ENVIRONMENT or k.startswith("LC_")}
    passed.setdefault("PATH", _DEFAULT_PATH)
    return passed


_Item = tuple[HookConfig, HookEvent] | None


class HookRunner:
    """Runs hooks in the background; ``submit`` never blocks."""

    def __init__(
        self,
        *,
        on_result: OnResult | None = None,
        on_idle: Callable[[], None] | None = None,
        environ: Mapping[str, str] | None = None,
        workers: int = WORKERS,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._on_result = on_result or (lambda inbox, hook, result: None)
        self._on_idle = on_idle or (lambda: None)
        self._pending = 0  # submitted and not yet finished (queued or running)
        self._environment = base_environment(os.environ if environ is None else environ)
        self._workers = workers
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_limit)
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._killed_all = False  # set by close once it killed what was running

    def submit(self, hooks: HookConfig, event: HookEvent) -> None:
        """Queue the hooks for ``event``; drop (and log) it if the queue is full or closing."""
        if hooks.is_empty:
            return
        if self._closing.is_set():
            self._dropped(hooks, event, why="shutting down")
            return
        with self._lock:
            try:
                self._queue.put_nowait((hooks, event))
            except queue.Full:
                full = True
            else:
                full = False
                self._pending += 1
        if full:
            self._dropped(hooks, event, why="too many hooks waiting")
            return
        with self._lock:
            if len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._run, name=f"hook-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    @property
    def is_idle(self) -> bool:
        """No hook is queued or running."""
        with self._lock:
            return self._pending == 0

    def close(self, *, timeout_seconds: float) -> None:
        """Let running hooks finish within ``timeout_seconds``, then kill them; drop the rest."""
        self._closing.set()
        dropped = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                dropped += 1
                with self._lock:
                    self._pending -= 1
                self._dropped(*item, why="shutting down")
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._killed_all = True
            for process in self._running:
                _kill_group(process)
        for thread in self._threads:
            thread.join(1.0)
        if dropped:
            log.warning("hooks_dropped", count=dropped, reason="shutting down")

    # ----------------------------------------------------------------- worker side

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hooks, event = item
            try:
                self._run_hooks(hooks, event)
            except Exception:  # the unit of work is one event's hooks; the worker carries on
                log.exception("hook_crashed", inbox=event.inbox, job_id=event.job_id)
            with self._lock:
                self._pending -= 1
                idle = self._pending == 0
            if idle:
                self._on_idle()

    def _run_hooks(self, hooks: HookConfig, event: HookEvent) -> None:
        command = hooks.on_success if event.event == "success" else hooks.on_failure
        name = "on_success" if event.event == "success" else "on_failure"
        if command and not self._closing.is_set():
            result = self._run_command(command, event, timeout_seconds=hooks.timeout_seconds)
            self._on_result(event.inbox, name, result)
        if hooks.webhook_url and not self._closing.is_set():
            result = self._post(hooks.webhook_url, event, timeout_seconds=hooks.timeout_seconds)
            self._on_result(event.inbox, "webhook", result)

    def _run_command(
        self, argv: tuple[str, ...], event: HookEvent, *, timeout_seconds: float
    ) -> str:
        fields = {"inbox": event.inbox, "job_id": event.job_id, "hook_event": event.event}
        started = time.monotonic()
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(
                    argv,
                    env={**self._environment, **event.environment()},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed as a whole
                    close_fds=True,
                )
            except OSError as exc:
                log.warning("hook_not_started", command=argv[0], error=str(exc), **fields)
                return "failed"
            with self._lock:
                self._running.add(process)
                if self._killed_all:  # close came between the check and the start
                    _kill_group(process)
            try:
                code = process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.wait()
                log.warning(
                    "hook_timed_out",
                    command=argv[0],
                    timeout_seconds=timeout_seconds,
                    output=_tail(output),
                    **fields,
                )
                return "timeout"
            finally:
                with self._lock:
                    self._running.discard(process)
            elapsed = round(time.monotonic() - started, 3)
            if code != 0:
                log.warning(
                    "hook_failed",
                    command=argv[0],
                    exit_code=code,
                    seconds=elapsed,
                    output=_tail(output),
                    **fields,
                )
                return "failed"
        log.info("hook_ran", command=argv[0], seconds=elapsed, **fields)
        return "ok"

    def _post(self, url: str, event: HookEvent, *, timeout_seconds: float) -> str:
        host = urlsplit(url).hostname  # the URL may carry a token: log its host only
        fields = {"inbox": event.inbox, "job_id": event.job_id, "host": host}
        body = json.dumps(event.body(), ensure_ascii=True).encode("ascii")
        problem = ""
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                response = requests.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=(min(10.0, timeout_seconds), timeout_seconds),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                response.close()
                status = response.status_code
                if 200 <= status < 300:
                    log.info("webhook_sent", status=status, attempt=attempt, **fields)
                    return "ok"
                problem = f"HTTP {status}"
                if status != 429 and status < 500:
                    break  # the receiver refuses it; asking again changes nothing
            if attempt < WEBHOOK_ATTEMPTS and self._closing.wait(
                WEBHOOK_BACKOFF_SECONDS[min(attempt, len(WEBHOOK_BACKOFF_SECONDS)) - 1]
            ):
                break
        log.warning("webhook_failed", problem=problem, **fields)
        return "failed"

    def _dropped(self, hooks: HookConfig, event: HookEvent, *, why: str) -> None:
        log.warning("hook_dropped", inbox=event.inbox, job_id=event.job_id, reason=why)
        for name, wanted in (
            ("on_success", event.event == "success" and hooks.on_success),
            ("on_failure", event.event == "failure" and hooks.on_failure),
            ("webhook", hooks.webhook_url),
        ):
            if wanted:
                self._on_result(event.inbox, name, "dropped")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(output: IO[bytes]) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - OUTPUT_TAIL_BYTES))
    return output.read().decode("utf-8", "replace").strip()
