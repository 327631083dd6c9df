"""The task table and its queue: tasks wait for one of N slots, are processed, then kept.

A task is ``Pending`` until a slot's worker thread takes it, ``Processing`` while that slot
runs it (recognition happens there) and for the rest of its drawn processing time, then
``Completed`` or ``Error``. A stuck task is marked ``Processing`` and left there forever; it
does not keep its slot, so stuck tasks never starve the others. Tasks are global by id and
disappear (read as ``NotExist``) ``retention_seconds`` after submission or when deleted.

``stop()`` joins the workers; a task interrupted before its processing time ran out goes back
to the front of the queue, and ``start()`` carries on with the same table.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ocrwatch.emulator.processing import Outcome
from ocrwatch.emulator.wire import Submission
from ocrwatch.model import ResponseStatus, TaskResult, TaskStatus

log = structlog.get_logger(__name__)

Processor = Callable[[Submission], Outcome]
_PURGE_INTERVAL_SECONDS = 1.0


@dataclass(slots=True)
class _Task:
    """One task's mutable record; every field is guarded by the table's lock."""

    task_id: str
    submission: Submission | None  # dropped once processed, to free the document bytes
    submitted_at: float
    processing_seconds: float
    forced_error: str | None
    is_stuck: bool
    status: TaskStatus = TaskStatus.PENDING
    outcome: Outcome | None = None


_RESPONSE_STATUS = {
    TaskStatus.PENDING: ResponseStatus.NOT_READY,
    TaskStatus.PROCESSING: ResponseStatus.NOT_READY,
    TaskStatus.COMPLETED: ResponseStatus.OK,
    TaskStatus.ERROR: ResponseStatus.ERROR,
}


class TaskTable:
    """Thread-safe tasks by id, a FIFO of pending ids and the worker threads of the slots."""

    def __init__(
        self,
        *,
        processor: Processor,
        slots: int,
        retention_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._processor = processor
        self._slots = slots
        self._retention_seconds = retention_seconds
        self._clock = clock
        self._changed = threading.Condition()
        self._tasks: dict[str, _Task] = {}
        self._pending: collections.deque[str] = collections.deque()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self._last_purge = clock()

    def submit(
        self,
        submission: Submission,
        *,
        processing_seconds: float,
        forced_error: str | None = None,
        is_stuck: bool = False,
    ) -> str:
        task_id = str(uuid.uuid4())
        with self._changed:
            self._purge_expired()
            self._tasks[task_id] = _Task(
                task_id=task_id,
                submission=submission,
                submitted_at=self._clock(),
                processing_seconds=processing_seconds,
                forced_error=forced_error,
                is_stuck=is_stuck,
            )
            self._pending.append(task_id)
            self._changed.notify()
        return task_id

    def read(self, task_id: str) -> TaskResult:
        with self._changed:
            task = self._live(task_id)
            if task is None:
                return TaskResult(task_id, TaskStatus.NOT_EXIST, ResponseStatus.TASK_NOT_FOUND)
            status, outcome = task.status, task.outcome
        if outcome is None or status not in (TaskStatus.COMPLETED, TaskStatus.ERROR):
            return TaskResult(task_id, status, _RESPONSE_STATUS[status])
        messages = (outcome.error,) if outcome.error is not None else ()
        return TaskResult(task_id, status, _RESPONSE_STATUS[status], outcome.results, messages)

    def cancel(self, task_id: str) -> None:
        with self._changed:
            self._tasks.pop(task_id, None)  # a queued id left behind is skipped by the workers

    def counts_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._changed:
            self._purge_expired(force=True)
            for task in self._tasks.values():
                counts[task.status.value] = counts.get(task.status.value, 0) + 1
        return counts

    def _live(self, task_id: str) -> _Task | None:
        task = self._tasks.get(task_id)
        if task is not None and self._clock() - task.submitted_at >= self._retention_seconds:
            del self._tasks[task_id]
            return None
        return task

    def _purge_expired(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_purge < _PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = now
        expired = [
            task_id
            for task_id, task in self._tasks.items()
            if now - task.submitted_at >= self._retention_seconds
        ]
        for task_id in expired:
            del self._tasks[task_id]

    def start(self) -> None:
        with self._changed:
            self._stopping = False
        self._workers = [
            threading.Thread(target=self._work, name=f"emulator-slot-{n}", daemon=True)
            for n in range(self._slots)
        ]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for worker in self._workers:
            worker.join()
        self._workers = []

    def _next_task(self) -> tuple[_Task, Submission] | None:
        """Wait for a pending task and mark it Processing; None when stopping."""
        with self._changed:
            while True:
                if self._stopping:
                    return None
                while self._pending:
                    task = self._live(self._pending.popleft())
                    if task is None or task.submission is None:
                        continue  # deleted or expired while it waited
                    task.status = TaskStatus.PROCESSING
                    return task, task.submission
                self._changed.wait()

    def _work(self) -> None:
        while (taken := self._next_task()) is not None:
            task, submission = taken
            if task.is_stuck:
                continue
            started = self._clock()
            outcome = self._run(task, submission)
            with self._changed:
                deadline = started + task.processing_seconds
                while not self._stopping and (left := deadline - self._clock()) > 0:
                    self._changed.wait(left)
                if self._stopping and self._clock() < deadline:
                    if task.task_id in self._tasks:
                        task.status = TaskStatus.PENDING
                        self._pending.appendleft(task.task_id)
                    return
                task.outcome = outcome
                task.submission = None
                task.status = (
                    TaskStatus.ERROR if outcome.error is not None else TaskStatus.COMPLETED
                )

    def _run(self, task: _Task, submission: Submission) -> Outcome:
        if task.forced_error is not None:
            return Outcome(error=task.forced_error)
        try:
            return self._processor(submission)
        except Exception:  # the one broad catch per unit of work: a task, never the slot
            log.exception("emulator_task_crashed", task_id=task.task_id)
            return Outcome(error="An internal error occurred while processing the task")
