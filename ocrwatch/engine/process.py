"""One worker process seen from the daemon: start it, wait until it is ready, ask, kill.

The worker is a fresh interpreter (``subprocess``, not ``fork``: the daemon's threads, locks
and sockets stay out of it) in its own session, so a terminal's Ctrl-C reaches only the
daemon. Its stderr is the daemon's, so its warnings and tracebacks reach the same log. Every
wait has a deadline: ``startup_timeout_seconds`` for loading the models, ``page_timeout_seconds``
between two answers while a file is recognised (a PDF gets that long per page). On a timeout
or a broken pipe the process is killed, so no half-answered request is ever reused; the pool
replaces it.

Not thread-safe: one caller at a time (the pool hands each process to one thread); only
``interrupt`` may be called from another thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ocrwatch.engine import channel
from ocrwatch.engine.failures import (
    EngineCrashed,
    EngineInputError,
    EngineTimeout,
    EngineUnavailable,
)
from ocrwatch.engine.values import EngineOptions, EngineResult, PageResult

TELEMETRY_ENVIRONMENT = {"ORT_DISABLE_TELEMETRY": "1"}
_EXIT_GRACE_SECONDS = 5.0


class WorkerProcess:
    def __init__(self, *, threads: int, max_pixels: int) -> None:
        environment = {**os.environ, **TELEMETRY_ENVIRONMENT}
        # One thread pool per worker, sized by the pool: N workers must not each take all cores.
        environment["OMP_NUM_THREADS"] = str(threads)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ocrwatch.engine.worker",
                f"--threads={threads}",
                f"--max-pixels={max_pixels}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            start_new_session=True,
            bufsize=0,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._request_fd = self._process.stdin.fileno()
        self._reply_fd = self._process.stdout.fileno()
        self.is_ready = False

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def is_alive(self) -> bool:
        return self._process.poll() is None

    def wait_ready(self, *, timeout_seconds: float) -> None:
        """Block until the models are loaded; ``EngineUnavailable`` (and killed) otherwise."""
        if self.is_ready:
            return
        try:
            message = channel.read_message(
                self._reply_fd, deadline=time.monotonic() + timeout_seconds
            )
        except TimeoutError as exc:
            self.kill()
            raise EngineUnavailable(
                f"the local OCR engine did not start within {timeout_seconds:g} s"
            ) from exc
        except (EOFError, ValueError, TypeError) as exc:
            self.kill()
            raise EngineUnavailable(
                f"the local OCR engine exited at start ({self._exit_description()})"
            ) from exc
        if message.get("kind") != "ready":
            self.kill()
            raise EngineUnavailable(str(message.get("message", "the engine did not start")))
        self.is_ready = True

    def recognize(
        self, data: bytes, options: EngineOptions, *, page_timeout_seconds: float
    ) -> EngineResult:
        """Recognise one file. Kills the process on a timeout or a broken stream."""
        pages: list[PageResult] = []
        try:
            channel.write_message(self._request_fd, {"options": options.to_wire()}, data=data)
            while (page := self._next_page(page_timeout_seconds)) is not None:
                pages.append(page)
            return EngineResult(pages=tuple(pages))
        except TimeoutError as exc:
            self.kill()
            raise EngineTimeout(
                f"the local OCR engine spent more than {page_timeout_seconds:g} s on page "
                f"{len(pages) + 1} of this file and was restarted"
            ) from exc
        except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            self.kill()
            raise EngineCrashed(
                f"the local OCR engine stopped while reading page {len(pages) + 1} of this "
                f"file ({self._exit_description()}) and was restarted"
            ) from exc

    def interrupt(self) -> None:
        """SIGKILL the process from another thread; its owner sees the end of the stream.

        Nothing is closed or reaped here: the owning thread may be reading the pipe.
        """
        if self._process.poll() is None:
            self._process.kill()

    def _next_page(self, timeout_seconds: float) -> PageResult | None:
        """The next page's result, or None at the end of the file."""
        deadline = time.monotonic() + timeout_seconds
        message = channel.read_message(self._reply_fd, deadline=deadline)
        kind = message.get("kind")
        if kind == "page":
            return PageResult.from_wire(message["page"])
        if kind == "done":
            return None
        if kind == "error" and message.get("input"):
            raise EngineInputError(str(message["message"]))
        if kind == "error":
            raise EngineCrashed(str(message["message"]))
        raise ValueError(f"unexpected message {kind!r}")

    def kill(self) -> None:
        """End the process now, reap it and close its pipes (owner only)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._close_pipes()

    def close(self) -> None:
        """Ask the process to exit (end of input); kill it if it does not, then reap it."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def _exit_description(self) -> str:
        try:
            code = self._process.wait(timeout=_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            return "not responding"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit status {code}"
