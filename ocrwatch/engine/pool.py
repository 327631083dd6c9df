"""``EnginePool``: N worker processes behind one thread-safe ``recognize(data, options)``.

A caller takes an idle worker (waiting for one if all are busy), sends it the file and gets an
``EngineResult`` back as plain values. A worker that crashes or overruns the per-page timeout
is killed and replaced before its next use, so one bad file costs one error, never the
daemon. ``start()`` launches every worker and waits until each has loaded its models, so a
missing engine is reported at start (``EngineUnavailable``), not on the first file. ``stop()``
asks idle workers to exit and kills busy ones; their callers get ``EngineStopped``. The pool
starts no threads of its own.

Sizing: each worker holds its own copy of the models (a few hundred MB) and uses
``threads_per_worker`` cores; the defaults give one worker per four cores, at least one, and
share the cores between the workers.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

import structlog

from ocrwatch import formats
from ocrwatch.engine.capabilities import check_language
from ocrwatch.engine.failures import EngineError, EngineStopped
from ocrwatch.engine.process import WorkerProcess
from ocrwatch.engine.values import EngineOptions, EngineResult

log = structlog.get_logger(__name__)

DEFAULT_MAX_PIXELS = formats.MAX_PAGE_PIXELS  # the engine's limit, as every layer applies it
DEFAULT_PAGE_TIMEOUT_SECONDS = 120.0
DEFAULT_STARTUP_TIMEOUT_SECONDS = 120.0


def default_workers() -> int:
    """One worker per four cores, at least one: recognition already uses several threads."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


class EnginePool:
    def __init__(
        self,
        *,
        workers: int | None = None,
        threads_per_worker: int | None = None,
        page_timeout_seconds: float = DEFAULT_PAGE_TIMEOUT_SECONDS,
        startup_timeout_seconds: float = DEFAULT_STARTUP_TIMEOUT_SECONDS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if page_timeout_seconds <= 0 or startup_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if max_pixels < 1:
            raise ValueError("max_pixels must be at least 1")
        cores = os.cpu_count() or 1
        self.threads_per_worker = threads_per_worker or max(1, cores // self.workers)
        self.page_timeout_seconds = page_timeout_seconds
        self.startup_timeout_seconds = startup_timeout_seconds
        self.max_pixels = max_pixels
        self._changed = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._running = False

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess(threads=self.threads_per_worker, max_pixels=self.max_pixels)

    def start(self) -> None:
        """Launch the workers and wait until all are ready; ``EngineUnavailable`` if not."""
        with self._changed:
            if self._running:
                return
            self._running = True
            self._idle = [self._spawn() for _ in range(self.workers)]
            starting = list(self._idle)
        try:
            for worker in starting:
                worker.wait_ready(timeout_seconds=self.startup_timeout_seconds)
        except EngineError:
            self.stop()
            raise
        log.info("engine_started", workers=self.workers, threads=self.threads_per_worker)

    def stop(self) -> None:
        """End every worker; calls in progress raise ``EngineStopped``."""
        with self._changed:
            if not self._running:
                return
            self._running = False
            idle, self._idle = self._idle, []
            for worker in self._busy:
                worker.interrupt()
            self._changed.notify_all()
        for worker in idle:
            worker.close()
        log.info("engine_stopped")

    def __enter__(self) -> EnginePool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The process ids of the live workers (for monitoring, and for tests that kill one)."""
        with self._changed:
            workers = [*self._idle, *self._busy]
        return tuple(worker.pid for worker in workers if worker.is_alive)

    def recognize(self, data: bytes, options: EngineOptions | None = None) -> EngineResult:
        """Recognise one image or PDF; safe to call from several threads at once."""
        options = options or EngineOptions()
        check_language(options.language)
        worker = self._acquire()
        try:
            if not worker.is_alive:
                worker.kill()  # reap the dead one
                worker = self._replace(worker)
            worker.wait_ready(timeout_seconds=self.startup_timeout_seconds)
            return worker.recognize(data, options, page_timeout_seconds=self.page_timeout_seconds)
        except EngineError:
            if not self._is_running():
                raise EngineStopped("the local OCR engine was stopped") from None
            raise
        finally:
            self._release(worker)

    def _is_running(self) -> bool:
        with self._changed:
            return self._running

    def _acquire(self) -> WorkerProcess:
        with self._changed:
            while self._running and not self._idle:
                self._changed.wait()
            if not self._running:
                raise EngineStopped("the local OCR engine is stopped")
            worker = self._idle.pop()
            self._busy.add(worker)
            return worker

    def _replace(self, dead: WorkerProcess) -> WorkerProcess:
        with self._changed:
            self._busy.discard(dead)
            if not self._running:
                raise EngineStopped("the local OCR engine was stopped")
            fresh = self._spawn()
            self._busy.add(fresh)
        log.warning("engine_worker_restarted", old_pid=dead.pid, new_pid=fresh.pid)
        return fresh

    def _release(self, worker: WorkerProcess) -> None:
        with self._changed:
            self._busy.discard(worker)
            if self._running:
                self._idle.append(worker)
                self._changed.notify()
                return
        if worker.is_alive:
            worker.close()
        else:
            worker.kill()
