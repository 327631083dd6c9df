"""A small pool of worker threads for slow network calls; results go back to the control thread.

Workers never touch the state store or the file system's final names: they run one callable
(an upload or a poll) and park its outcome. The control thread collects outcomes with
``take_finished`` and applies them, so there is exactly one writer of state.

Workers are daemon threads on purpose: an HTTP call stuck until its read timeout must not
keep the process alive after a graceful stop has recorded everything it can.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[K]):
    key: K
    value: object = None
    error: BaseException | None = None


class WorkerPool(Generic[K]):
    """``size`` threads running submitted callables; at most ``size`` run at once."""

    def __init__(self, name: str, *, size: int, on_finished: Callable[[], None]) -> None:
        self._name = name
        self._size = max(1, size)
        self._on_finished = on_finished
        self._tasks: queue.SimpleQueue[tuple[K, Callable[[], object]] | None] = queue.SimpleQueue()
        self._finished: queue.SimpleQueue[Outcome[K]] = queue.SimpleQueue()
        self._busy: set[K] = set()
        self._running = 0  # submitted and not finished yet (busy also counts uncollected ones)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def capacity(self) -> int:
        """How many more callables can start right away."""
        with self._lock:
            return self._size - len(self._busy)

    def is_busy_with(self, key: K) -> bool:
        with self._lock:
            return key in self._busy

    @property
    def busy_count(self) -> int:
        with self._lock:
            return len(self._busy)

    @property
    def running_count(self) -> int:
        """Callables still running; their outcomes are not waiting to be collected yet."""
        with self._lock:
            return self._running

    def submit(self, key: K, work: Callable[[], object]) -> None:
        with self._lock:
            if key in self._busy:
                raise ValueError(f"{self._name}: {key!r} is already running")
            self._busy.add(key)
            self._running += 1
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put((key, work))

    def take_finished(self) -> list[Outcome[K]]:
        outcomes: list[Outcome[K]] = []
        while True:
            try:
                outcome = self._finished.get_nowait()
            except queue.Empty:
                return outcomes
            with self._lock:
                self._busy.discard(outcome.key)
            outcomes.append(outcome)

    def close(self, *, timeout_seconds: float) -> None:
        """Ask every worker to stop once idle and wait up to ``timeout_seconds`` in all."""
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            key, work = item
            try:
                outcome: Outcome[K] = Outcome(key, value=work())
            except BaseException as exc:  # noqa: BLE001 - handed to the control thread as data
                outcome = Outcome(key, error=exc)
            self._finished.put(outcome)
            with self._lock:
                self._running -= 1
            self._on_finished()
