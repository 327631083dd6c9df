"""The daemon: one control thread that owns the state store and every file move.

Watchdog handler threads only put paths on ``intake``; uploads and polls run on two small
worker pools and hand their outcomes back. Everything else - discovery, settling, state
transitions, sidecar writes, error-folder moves - happens in ``tick(now)`` on the control
thread, so there is a single writer and no lock around the store.

Intent is committed before every side effect: a row is SUBMITTING before its POST, SUBMITTED
with the task id right after, WRITING with the fetched results before any sidecar is
written, DISPOSING before the source is moved or deleted, and carries its error class before
the file goes to the error folder. ``reconcile`` reads those intents back after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from ocrwatch import __version__, outputs, policy, probe, sidecars
from ocrwatch.aspose import OcrApi
from ocrwatch.config import Config, InboxConfig
from ocrwatch.errors import (
    ApiRejected,
    AuthenticationError,
    ConfigError,
    InputFileError,
    PermanentError,
    SubmitOutcomeUnknown,
    TransientError,
)
from ocrwatch.model import (
    Disposition,
    DuplicatePolicy,
    ErrorClass,
    Job,
    JobState,
    Mode,
    TaskResult,
    TaskStatus,
    WatchMode,
)
from ocrwatch.schedule import (
    Breaker,
    BreakerState,
    PollAction,
    decide_poll,
    first_poll_delay,
    retry_at,
    updated_estimate,
)
from ocrwatch.store import Store
from ocrwatch.watcher import Watchers, WatchSpec, filesystem_type, scan
from ocrwatch.workers import WorkerPool

log = structlog.get_logger(__name__)

IntakeItem = tuple[str, Path, bool] | None  # (inbox name, path, came from an event); None wakes
AUTH_PAUSE_SECONDS = 300.0
OUTPUT_RETRY_SECONDS = 60.0
WATCH_CHECK_SECONDS = 10.0
FAILURE_RETRY_SECONDS = 60.0


class Notifier(Protocol):
    """What the service tells its supervisor (systemd); every call may be a no-op."""

    def ready(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self) -> None: ...


class NullNotifier:
    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass


@dataclass(slots=True)
class _Settling:
    state: policy.SettleState
    check_at: float


@dataclass(frozen=True, slots=True)
class RunSummary:
    done: int
    failed: int


class Service:
    """Runs the pipeline for every inbox of ``config`` against ``api``, with state in ``store``."""

    def __init__(
        self,
        config: Config,
        *,
        api: OcrApi,
        store: Store,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        watch: bool = True,
    ) -> None:
        self.config = config
        self._api = api
        self._store = store
        self._notifier = notifier or NullNotifier()
        self._clock = clock
        self._rng = rng or random.Random()
        self._watch = watch
        self._inboxes = {inbox.name: inbox for inbox in config.inboxes}
        self.intake: queue.SimpleQueue[IntakeItem] = queue.SimpleQueue()
        service = config.service
        self._uploads: WorkerPool[int] = WorkerPool(
            "upload", size=service.upload_concurrency, on_finished=self.wake
        )
        self._polls: WorkerPool[int] = WorkerPool(
            "poll", size=service.poll_concurrency, on_finished=self.wake
        )
        self._breaker = Breaker(
            threshold=service.breaker_threshold, probe_seconds=service.breaker_probe_seconds
        )
        self._estimate_seconds: float | None = None
        self._poll_counts: dict[int, int] = {}
        self._transient_failures: dict[int, int] = {}
        self._settling: dict[int, _Settling] = {}
        self._stop = threading.Event()
        self._watchers: Watchers | None = None
        self._next_rescan_at = 0.0
        self._next_watch_check_at = 0.0
        self._next_failure_retry_at = 0.0
        self._done_count = 0
        self._failed_count = 0
        self._problems: list[str] = []

    # ----------------------------------------------------------------- lifecycle

    def wake(self) -> None:
        self.intake.put(None)

    def request_stop(self) -> None:
        """Safe from a signal handler: sets a flag and wakes the loop."""
        self._stop.set()
        self.intake.put(None)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        """Reconcile the store with the folders, start watching, and scan every inbox."""
        now = self._clock()
        for warning in self.config.warnings:
            log.warning("config_warning", message=warning)
        self.reconcile(now)
        if self._watch:
            self._watchers = Watchers(self._watch_specs(), self._on_event)
            self._watchers.start()
            self._check_watchers(now)
        self.rescan(now)
        self._next_rescan_at = now + self.config.rescan_interval_seconds

    def run(self, *, until_idle: bool = False) -> RunSummary:
        """The main loop; returns when stopped, or (``until_idle``) when nothing is left to do."""
        self.start()
        self._notifier.ready()
        log.info("daemon_ready", inboxes=len(self._inboxes), version=__version__)
        try:
            while not self._stop.is_set():
                self._wait_for_work(self._clock())
                self.tick(self._clock())
                self._notifier.watchdog()
                if until_idle and self.is_idle():
                    break
        finally:
            self.shutdown()
        return RunSummary(done=self._done_count, failed=self._failed_count)

    def shutdown(self) -> None:
        self._notifier.stopping()
        log.info("daemon_stopping")
        if self._watchers is not None:
            self._watchers.stop()
        # Give running calls a moment so a task id that is on its way back gets recorded.
        deadline = time.monotonic() + 5.0
        while (self._uploads.busy_count or self._polls.busy_count) and time.monotonic() < deadline:
            time.sleep(0.05)
            self._collect(self._clock())
        self._collect(self._clock())
        self._uploads.close(timeout_seconds=1.0)
        self._polls.close(timeout_seconds=1.0)

    def is_idle(self) -> bool:
        """Nothing is active: every file found so far is done or failed."""
        if self._uploads.busy_count or self._polls.busy_count or not self.intake.empty():
            return False
        counts = self._store.count_by_state()
        return not any(n for state, n in counts.items() if state.is_active)

    def _wait_for_work(self, now: float) -> None:
        timeout = max(0.0, min(1.0, self._next_wakeup(now) - now))
        with contextlib.suppress(queue.Empty):
            item = self.intake.get(timeout=timeout)
            if item is not None:
                self.intake.put(item)  # tick drains it with the rest

    def _next_wakeup(self, now: float) -> float:
        """The earliest moment something is due: a settle check, a poll, a retry."""
        wake = now + 1.0
        for entry in self._settling.values():
            wake = min(wake, entry.check_at)
        if not self._breaker.allows_request(now):
            return wake
        states = [JobState.SUBMITTED]
        if self._uploads.capacity > 0 and (
            self._store.count_in_flight() < self.config.service.max_in_flight
        ):
            states.append(JobState.QUEUED)
        # Jobs whose poll is already running are due too; look past them.
        limit = self._polls.busy_count + 1
        for job in self._store.due(states, now=wake, limit=limit):
            if not self._polls.is_busy_with(job.id):
                return min(wake, job.next_attempt_at or now)
        return wake

    # ----------------------------------------------------------------- one step

    def tick(self, now: float) -> None:
        """One deterministic step of the pipeline at time ``now``."""
        self._drain_intake(now)
        self._collect(now)
        self._check_settling(now)
        if not self._stop.is_set():
            self._submit_due(now)
            self._poll_due(now)
            self._finish_due(now)
        if now >= self._next_failure_retry_at:
            self._retry_pending_failures(now)
            self._next_failure_retry_at = now + FAILURE_RETRY_SECONDS
        if now >= self._next_rescan_at:
            self.rescan(now)
            self._next_rescan_at = now + self.config.rescan_interval_seconds
        if self._watchers is not None and now >= self._next_watch_check_at:
            self._check_watchers(now)
        self._notifier.status(self.status_line())

    def status_line(self) -> str:
        counts = self._store.count_by_state()
        waiting = counts.get(JobState.SETTLING, 0) + counts.get(JobState.QUEUED, 0)
        in_flight = counts.get(JobState.SUBMITTING, 0) + counts.get(JobState.SUBMITTED, 0)
        text = (
            f"watching {len(self._inboxes)} inboxes; {waiting} waiting, {in_flight} in flight, "
            f"{self._done_count} done, {self._failed_count} failed"
        )
        if self._breaker.state is not BreakerState.CLOSED:
            text += "; service unavailable, paused"
        if self._problems:
            text += f"; {len(self._problems)} problem(s): {self._problems[0]}"
        return text

    def _drain_intake(self, now: float) -> None:
        items: list[tuple[str, Path, bool]] = []
        while True:
            try:
                item = self.intake.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        if not items:
            return
        with self._store.batch():
            for name, path, is_event in items:
                inbox = self._inboxes.get(name)
                if inbox is not None:
                    self._discover(inbox, path, now, is_event=is_event)

    # ----------------------------------------------------------------- discovery and settling

    def rescan(self, now: float) -> None:
        """Feed every file present in every inbox through discovery (start-up and periodic)."""
        for inbox in self._inboxes.values():
            if not inbox.path.is_dir():
                continue
            with self._store.batch():
                for path in scan(inbox.path, recursive=inbox.recursive):
                    self._discover(inbox, path, now, is_event=False)

    def _discover(self, inbox: InboxConfig, path: Path, now: float, *, is_event: bool) -> None:
        try:
            relpath = path.relative_to(inbox.path)
        except ValueError:
            return
        verdict = policy.candidate_verdict(
            relpath,
            include=inbox.include,
            exclude=inbox.exclude,
            output_template=inbox.output_template,
            outputs_inside_inbox=self._outputs_inside_inbox(inbox),
        )
        if not verdict.accepted:
            return
        job = self._store.active_job_for(path)
        if job is not None:
            entry = self._settling.get(job.id)
            if entry is not None and is_event:
                entry.state = policy.observe(
                    entry.state,
                    size=entry.state.size,
                    mtime_ns=entry.state.mtime_ns,
                    now=now,
                    event=True,
                )
                entry.check_at = min(entry.check_at, now + inbox.settle_seconds)
            return
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if self._is_already_done(path, st):
            return
        job = self._store.add_job(
            inbox=inbox.name, path=path, profile_hash=inbox.profile_hash, now=now
        )
        log.info("file_discovered", inbox=inbox.name, path=str(path), job_id=job.id)
        self._track_settling(job, st, now, event=is_event)

    def _is_already_done(self, path: Path, st: os.stat_result) -> bool:
        """A kept source that was processed before, unchanged since: nothing to do."""
        for job in self._store.history(path)[:1]:
            fp = job.fingerprint
            if job.state is JobState.DONE and fp is not None:
                return (fp.device, fp.inode, fp.size, fp.mtime_ns) == (
                    st.st_dev,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                )
        return False

    def _track_settling(self, job: Job, st: os.stat_result, now: float, *, event: bool) -> None:
        state = policy.observe(None, size=st.st_size, mtime_ns=st.st_mtime_ns, now=now, event=event)
        inbox = self._inboxes[job.inbox]
        self._settling[job.id] = _Settling(state=state, check_at=now + inbox.settle_seconds)

    def _check_settling(self, now: float) -> None:
        due = [job_id for job_id, entry in self._settling.items() if entry.check_at <= now]
        for job_id in due:
            job = self._store.get(job_id)
            if job.state is not JobState.SETTLING:
                self._settling.pop(job_id, None)
                continue
            self._guarded(job, now, self._check_one_settling)

    def _check_one_settling(self, job: Job, now: float) -> None:
        inbox = self._inboxes[job.inbox]
        entry = self._settling[job.id]
        refusal = probe.refusal(job.path, inbox_root=inbox.path)
        if refusal == "vanished":
            self._forget(job, "vanished while settling")
            return
        if refusal is not None:
            self._fail(job, ErrorClass.UNSUPPORTED, f"refused: {refusal}", now)
            return
        st = job.path.lstat()
        entry.state = policy.observe(
            entry.state, size=st.st_size, mtime_ns=st.st_mtime_ns, now=now, event=False
        )
        looks_complete: bool | None = None
        incomplete: str | None = None
        if now - max(entry.state.last_change_at, entry.state.last_event_at) >= inbox.settle_seconds:
            kind = probe.sniff(job.path)
            if st.st_size == 0:
                # Some writers create the file long before the first byte arrives.
                incomplete = "empty file"
            elif kind is not probe.FileKind.UNKNOWN:
                incomplete = probe.completeness(job.path, kind)
            # Content of an unknown kind settles normally and is refused by the preflight.
            looks_complete = incomplete is None
        verdict = policy.settle_verdict(
            entry.state,
            now=now,
            settle_seconds=inbox.settle_seconds,
            max_settle_seconds=inbox.max_settle_seconds,
            looks_complete=looks_complete,
            incomplete_reason=incomplete,
        )
        if verdict.kind == "wait":
            entry.check_at = verdict.check_again_at or now + min(1.0, inbox.settle_seconds)
            return
        self._settling.pop(job.id, None)
        if verdict.kind == "never_settled":
            self._fail(job, ErrorClass.NEVER_SETTLED, verdict.reason, now)
            return
        self._on_settled(job, inbox, now)

    def _on_settled(self, job: Job, inbox: InboxConfig, now: float) -> None:
        facts = probe.inspect(job.path)
        problem, error_class = _preflight_problem(facts, inbox, trial=self._api.is_trial)
        if problem is not None:
            self._fail(job, error_class, problem, now)
            return
        mode = Mode.PDF if facts.kind is probe.FileKind.PDF else inbox.mode
        fingerprint = probe.fingerprint(job.path, with_hash=True)
        log.info("file_settled", inbox=inbox.name, path=str(job.path), job_id=job.id)
        if inbox.duplicates is not DuplicatePolicy.REPROCESS and fingerprint.sha256:
            found = self._store.find_done_results(
                sha256=fingerprint.sha256, profile_hash=inbox.profile_hash
            )
            if found is not None:
                original, results = found
                if inbox.duplicates is DuplicatePolicy.SKIP:
                    self._store.update(
                        job.id,
                        now=now,
                        state=JobState.DONE,
                        fingerprint=fingerprint,
                        mode=mode,
                        last_error=f"duplicate of {original.path}; skipped",
                    )
                    log.info("duplicate_skipped", path=str(job.path), original=str(original.path))
                    return
                with self._store.batch():
                    self._store.save_results(job.id, results)
                    job = self._store.update(
                        job.id, now=now, state=JobState.WRITING, fingerprint=fingerprint, mode=mode
                    )
                log.info("duplicate_reused", path=str(job.path), original=str(original.path))
                self._write_outputs(job, now)
                return
        self._store.update(
            job.id,
            now=now,
            state=JobState.QUEUED,
            fingerprint=fingerprint,
            mode=mode,
            next_attempt_at=None,
        )

    # ----------------------------------------------------------------- submitting

    def _submit_due(self, now: float) -> None:
        capacity = min(
            self._uploads.capacity,
            self.config.service.max_in_flight - self._store.count_in_flight(),
        )
        if capacity <= 0 or not self._breaker.allows_request(now):
            return
        for job in self._fair_due(JobState.QUEUED, now, capacity):
            if not self._breaker.allows_request(now):
                break
            self._breaker = self._breaker.on_request(now)
            inbox = self._inboxes.get(job.inbox)
            if inbox is None:
                continue
            submitting = self._store.update(
                job.id,
                now=now,
                expect_state=JobState.QUEUED,
                state=JobState.SUBMITTING,
                attempts=job.attempts + 1,
                task_id=None,
            )
            self._uploads.submit(job.id, self._upload_work(submitting, inbox))

    def _fair_due(self, state: JobState, now: float, limit: int) -> list[Job]:
        """Due jobs, alternating between inboxes so one busy inbox cannot starve the others."""
        per_inbox = [
            self._store.due([state], now=now, limit=limit, inbox=name) for name in self._inboxes
        ]
        chosen: list[Job] = []
        for round_ in range(limit):
            for jobs in per_inbox:
                if round_ < len(jobs) and len(chosen) < limit:
                    chosen.append(jobs[round_])
        return chosen

    def _upload_work(self, job: Job, inbox: InboxConfig) -> Callable[[], object]:
        api, path, fingerprint, mode = self._api, job.path, job.fingerprint, job.mode
        assert fingerprint is not None and mode is not None

        def upload() -> str:
            with probe.open_for_upload(path, expected=fingerprint) as source:
                return api.submit(mode, source, inbox.settings)

        return upload

    def _apply_upload(
        self, job: Job, value: object, error: BaseException | None, now: float
    ) -> None:
        if error is None:
            task_id = str(value)
            self._service_answered(now)
            self._transient_failures.pop(job.id, None)
            self._poll_counts[job.id] = 0
            self._store.update(
                job.id,
                now=now,
                state=JobState.SUBMITTED,
                task_id=task_id,
                submitted_at=now,
                next_attempt_at=now + first_poll_delay(self._estimate_seconds),
            )
            log.info(
                "task_submitted",
                path=str(job.path),
                job_id=job.id,
                task_id=task_id,
                attempt=job.attempts,
            )
            return
        if isinstance(error, InputFileError) and "changed" in str(error):
            self._breaker = self._breaker.on_abandoned()
            job = self._store.update(
                job.id, now=now, state=JobState.SETTLING, attempts=job.attempts - 1
            )
            self._resettle(job, now)
            return
        if isinstance(error, SubmitOutcomeUnknown):
            # The task may exist and be billed; we cannot learn its id. Count the attempt.
            self._transient(job, error, now, state=JobState.QUEUED, counts_attempt=True)
            return
        if isinstance(error, AuthenticationError):
            self._auth_failed(job, error, now, state=JobState.QUEUED, attempts=job.attempts - 1)
            return
        if isinstance(error, TransientError):
            self._transient(job, error, now, state=JobState.QUEUED, counts_attempt=False)
            return
        self._breaker = self._breaker.on_abandoned()
        self._permanent(job, error, now)

    # ----------------------------------------------------------------- polling

    def _poll_due(self, now: float) -> None:
        capacity = self._polls.capacity
        if capacity <= 0:
            return
        for job in self._store.due([JobState.SUBMITTED], now=now, limit=capacity * 2):
            if self._polls.capacity <= 0 or not self._breaker.allows_request(now):
                break
            if self._polls.is_busy_with(job.id) or job.task_id is None or job.mode is None:
                continue
            self._breaker = self._breaker.on_request(now)
            self._polls.submit(job.id, self._poll_work(job.task_id, job.mode))

    def _poll_work(self, task_id: str, mode: Mode) -> Callable[[], object]:
        api, probe_first = (
            self._api,
            self.config.service.use_status_probe and not self._api.is_trial,
        )

        def poll() -> TaskResult:
            if probe_first:
                status = api.status(task_id, mode=mode)
                if status.task_status is not TaskStatus.COMPLETED:
                    return status
            return api.fetch(task_id, mode=mode)

        return poll

    def _apply_poll(self, job: Job, value: object, error: BaseException | None, now: float) -> None:
        if job.state is not JobState.SUBMITTED:
            return
        if isinstance(error, AuthenticationError):
            self._auth_failed(job, error, now, state=JobState.SUBMITTED, attempts=job.attempts)
            return
        if isinstance(error, TransientError):
            self._transient(job, error, now, state=JobState.SUBMITTED, counts_attempt=False)
            return
        if isinstance(error, ApiRejected):
            # The service refuses to tell us about this id; treat the task as gone.
            value = TaskResult(
                task_id=job.task_id or "", task_status=TaskStatus.NOT_EXIST, response_status=None
            )
        elif error is not None:
            self._breaker = self._breaker.on_abandoned()
            self._permanent(job, error, now)
            return
        assert isinstance(value, TaskResult)
        self._service_answered(now)
        # A poll delayed by failures or an outage says nothing about processing time.
        had_failures = self._transient_failures.pop(job.id, None) is not None
        polls = self._poll_counts.get(job.id, 0) + 1
        self._poll_counts[job.id] = polls
        submitted_at = job.submitted_at or now
        lateness = now - (job.next_attempt_at or now)
        on_schedule = not had_failures and lateness < max(0.5, 0.25 * (now - submitted_at))
        if on_schedule and value.task_status is not TaskStatus.NOT_EXIST:
            self._estimate_seconds = updated_estimate(
                self._estimate_seconds,
                elapsed_seconds=now - submitted_at,
                finished=value.task_status.is_finished,
                polls=polls,
            )
        decision = decide_poll(
            value.task_status,
            now=now,
            submitted_at=submitted_at,
            polls_so_far=polls,
            attempts=job.attempts,
            max_attempts=self.config.service.max_attempts,
            deadline_seconds=self.config.service.task_deadline_seconds,
            estimate_seconds=self._estimate_seconds,
        )
        log.debug("task_polled", job_id=job.id, task_id=job.task_id, status=value.task_status.value)
        if decision.action is PollAction.WAIT:
            self._store.update(job.id, now=now, next_attempt_at=decision.poll_at)
        elif decision.action is PollAction.RESUBMIT:
            self._poll_counts.pop(job.id, None)
            self._store.update(
                job.id,
                now=now,
                state=JobState.QUEUED,
                task_id=None,
                next_attempt_at=None,
                last_error=decision.reason,
            )
            log.warning(
                "task_resubmitting", job_id=job.id, task_id=job.task_id, reason=decision.reason
            )
        elif decision.action is PollAction.FAIL:
            messages = "; ".join(value.messages)
            reason = f"{decision.reason}: {messages}" if messages else decision.reason
            self._fail(job, decision.error_class or ErrorClass.TASK_ERROR, reason, now)
        else:
            self._poll_counts.pop(job.id, None)
            with self._store.batch():
                self._store.save_results(job.id, value.results)
                job = self._store.update(job.id, now=now, state=JobState.WRITING)
            log.info(
                "task_completed",
                job_id=job.id,
                task_id=job.task_id,
                seconds=round(now - submitted_at, 3),
            )
            self._write_outputs(job, now)

    def _finish_due(self, now: float) -> None:
        """Sidecar writes and disposals that were postponed (disk full) or left by a crash."""
        for job in self._store.due([JobState.WRITING, JobState.DISPOSING], now=now, limit=50):
            step = self._write_outputs if job.state is JobState.WRITING else self._dispose
            self._guarded(job, now, step)

    # ----------------------------------------------------------------- outcomes

    def _collect(self, now: float) -> None:
        for pool, apply in ((self._uploads, self._apply_upload), (self._polls, self._apply_poll)):
            for outcome in pool.take_finished():
                job = self._store.get(outcome.key)
                step = functools.partial(_apply_outcome, apply, outcome.value, outcome.error)
                self._guarded(job, now, step)

    def _guarded(self, job: Job, now: float, step: Callable[[Job, float], None]) -> None:
        """The one place a bug in one file's step is caught: no file can stop the daemon."""
        try:
            step(job, now)
        except Exception as exc:  # the unit of work is one job
            log.exception("job_step_crashed", job_id=job.id, path=str(job.path))
            with contextlib.suppress(Exception):
                self._fail(
                    self._store.get(job.id), ErrorClass.UNREADABLE, f"internal error: {exc}", now
                )

    def _service_answered(self, now: float) -> None:
        """The service is up. After an outage, files stop waiting out their own backoff."""
        was_open = self._breaker.state is not BreakerState.CLOSED
        self._breaker = self._breaker.on_success()
        if not was_open:
            return
        waiting = [
            job
            for job in self._store.jobs([JobState.QUEUED, JobState.SUBMITTED])
            if job.next_attempt_at is not None and job.next_attempt_at > now
        ]
        with self._store.batch():
            for job in waiting:
                self._store.update(job.id, now=now, next_attempt_at=now)
        log.info("service_recovered", released=len(waiting))

    def _transient(
        self, job: Job, error: TransientError, now: float, *, state: JobState, counts_attempt: bool
    ) -> None:
        failures = self._transient_failures.get(job.id, 0) + 1
        self._transient_failures[job.id] = failures
        self._breaker = self._breaker.on_failure(now, retry_after_seconds=error.retry_after_seconds)
        if self._breaker.state is BreakerState.OPEN and self._breaker.consecutive_failures == (
            self._breaker.threshold
        ):
            log.error("breaker_opened", reason=str(error), until=self._breaker.open_until)
        attempts = job.attempts if counts_attempt else max(0, job.attempts - 1)
        if state is JobState.SUBMITTED:
            attempts = job.attempts
        if counts_attempt and attempts >= self.config.service.max_attempts:
            self._fail(
                job,
                ErrorClass.ATTEMPTS_EXHAUSTED,
                f"{error}; gave up after {attempts} submissions",
                now,
            )
            return
        when = retry_at(
            now,
            failures=failures,
            jitter=self._rng.random(),
            retry_after_seconds=error.retry_after_seconds,
        )
        self._store.update(
            job.id,
            now=now,
            state=state,
            attempts=attempts,
            next_attempt_at=when,
            last_error=str(error),
            http_status=error.status_code,
        )
        log.warning(
            "retry_scheduled",
            job_id=job.id,
            path=str(job.path),
            error=str(error),
            retry_in_seconds=round(when - now, 2),
            state=state.value,
        )

    def _auth_failed(
        self, job: Job, error: AuthenticationError, now: float, *, state: JobState, attempts: int
    ) -> None:
        self._breaker = self._breaker.on_failure(now, retry_after_seconds=AUTH_PAUSE_SECONDS)
        self._store.update(
            job.id,
            now=now,
            state=state,
            attempts=max(0, attempts),
            next_attempt_at=now + AUTH_PAUSE_SECONDS,
            last_error=str(error),
        )
        log.error("authentication_failed", error=str(error), paused_seconds=AUTH_PAUSE_SECONDS)

    def _permanent(self, job: Job, error: BaseException, now: float) -> None:
        if isinstance(error, ApiRejected):
            self._fail(job, ErrorClass.REJECTED, str(error), now, http_status=error.status_code)
        elif isinstance(error, InputFileError):
            self._fail(job, ErrorClass.UNREADABLE, str(error), now)
        elif isinstance(error, ConfigError | PermanentError):
            self._fail(job, ErrorClass.REJECTED, str(error), now)
        else:
            log.error("job_step_crashed", job_id=job.id, error=repr(error))
            self._fail(job, ErrorClass.UNREADABLE, f"internal error: {error!r}", now)

    # ----------------------------------------------------------------- writing and disposal

    def _write_outputs(self, job: Job, now: float) -> None:
        inbox = self._inboxes[job.inbox]
        if not self._source_unchanged(job):
            return
        results = self._store.results_for(job.id)
        if results is None:
            self._store.update(job.id, now=now, state=JobState.SUBMITTED, next_attempt_at=now)
            return
        try:
            files = sidecars.compose(
                results, formats=inbox.result_formats, regions=inbox.settings.regions
            )
        except PermanentError as exc:
            self._fail(job, ErrorClass.TASK_ERROR, str(exc), now)
            return
        targets = policy.output_paths(
            job.path,
            inbox_root=inbox.path,
            output_dir=inbox.output_dir,
            template=inbox.output_template,
            formats=inbox.result_formats,
            inbox_name=inbox.name,
        )
        try:
            for sidecar in files:
                target = Path(targets[sidecar.format])
                if sidecar.part is not None:
                    target = target.with_suffix(f".{sidecar.part}{target.suffix}")
                outputs.write_atomic(target, sidecar.data)
                log.info("sidecar_written", job_id=job.id, path=str(target))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._store.update(
                    job.id,
                    now=now,
                    next_attempt_at=now + OUTPUT_RETRY_SECONDS,
                    last_error=f"cannot write sidecar: {exc.strerror}",
                )
                log.error("sidecar_write_failed", job_id=job.id, error=str(exc), retrying=True)  # noqa: TRY400 - an expected condition, no traceback
                return
            self._fail(job, ErrorClass.OUTPUT_FAILED, f"cannot write sidecar: {exc}", now)
            return
        job = self._store.update(job.id, now=now, state=JobState.DISPOSING)
        self._dispose(job, now)

    def _source_unchanged(self, job: Job) -> bool:
        """Before writing or disposing: the source must still be the file that was recognised."""
        now = self._clock()
        try:
            st = job.path.lstat()
        except FileNotFoundError:
            self._store.update(
                job.id,
                now=now,
                state=JobState.DONE,
                last_error="the source vanished before its sidecar was written",
            )
            log.warning("source_vanished", job_id=job.id, path=str(job.path))
            return False
        fp = job.fingerprint
        if fp is not None and (fp.device, fp.inode, fp.size, fp.mtime_ns) == (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        ):
            return True
        log.info("source_changed_reprocessing", job_id=job.id, path=str(job.path))
        job = self._store.update(
            job.id,
            now=now,
            state=JobState.SETTLING,
            task_id=None,
            attempts=0,
            fingerprint=None,
            next_attempt_at=None,
        )
        self._resettle(job, now)
        return False

    def _resettle(self, job: Job, now: float) -> None:
        try:
            st = job.path.lstat()
        except FileNotFoundError:
            self._forget(job, "vanished")
            return
        self._track_settling(job, st, now, event=True)

    def _dispose(self, job: Job, now: float) -> None:
        inbox = self._inboxes[job.inbox]
        try:
            st = job.path.lstat()
        except FileNotFoundError:
            st = None
        fp = job.fingerprint
        unchanged = (
            st is not None
            and fp is not None
            and (fp.device, fp.inode, fp.size, fp.mtime_ns)
            == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        )
        if st is not None and unchanged and inbox.on_success is not Disposition.KEEP:
            if inbox.on_success is Disposition.MOVE and inbox.done_dir is not None:
                target = policy.mirrored_path(
                    job.path, inbox_root=inbox.path, target_root=inbox.done_dir
                )
                final = outputs.move_file(job.path, Path(target))
                log.info("source_moved", job_id=job.id, path=str(job.path), to=str(final))
            elif inbox.on_success is Disposition.DELETE:
                outputs.delete_file(job.path)
                log.info("source_deleted", job_id=job.id, path=str(job.path))
        self._store.update(job.id, now=now, state=JobState.DONE)
        self._done_count += 1
        log.info("file_done", job_id=job.id, path=str(job.path), task_id=job.task_id)
        if st is not None and not unchanged:
            # Replaced after it was recognised: the new content is a new file.
            new_job = self._store.add_job(
                inbox=inbox.name, path=job.path, profile_hash=inbox.profile_hash, now=now
            )
            self._track_settling(new_job, st, now, event=True)

    def _fail(
        self,
        job: Job,
        error_class: ErrorClass,
        message: str,
        now: float,
        *,
        http_status: int | None = None,
    ) -> None:
        """Move the source to the error folder with a reason file; the intent is committed first."""
        inbox = self._inboxes[job.inbox]
        self._settling.pop(job.id, None)
        job = self._store.update(
            job.id, now=now, error_class=error_class, last_error=message, http_status=http_status
        )
        target = Path(
            policy.mirrored_path(job.path, inbox_root=inbox.path, target_root=inbox.error_dir)
        )
        reason = _reason(job, inbox, now)
        try:
            final = outputs.move_to_error(job.path, target, reason=reason)
        except FileNotFoundError:
            final = None
        except OSError as exc:
            # The error folder itself is unusable; keep the intent and try again later.
            self._store.update(job.id, now=now, next_attempt_at=now + FAILURE_RETRY_SECONDS)
            log.error("error_folder_unusable", job_id=job.id, error=str(exc))  # noqa: TRY400
            return
        self._store.update(job.id, now=now, state=JobState.FAILED)
        self._failed_count += 1
        log.error(
            "file_moved_to_error",
            job_id=job.id,
            path=str(job.path),
            to=str(final) if final else None,
            error_class=error_class.value,
            message=message,
            http_status=http_status,
            task_id=job.task_id,
        )

    def _retry_pending_failures(self, now: float) -> None:
        for job in self._pending_failures():
            self._fail(
                job,
                job.error_class or ErrorClass.UNREADABLE,
                job.last_error or "",
                now,
                http_status=job.http_status,
            )

    def _pending_failures(self) -> Iterator[Job]:
        active = [s for s in JobState if s.is_active]
        for job in self._store.jobs(active):
            if job.error_class is not None:
                yield job

    def _forget(self, job: Job, why: str) -> None:
        self._settling.pop(job.id, None)
        self._store.delete(job.id)
        log.info("file_forgotten", job_id=job.id, path=str(job.path), reason=why)

    # ----------------------------------------------------------------- start-up reconciliation

    def reconcile(self, now: float) -> None:
        """Decide the fate of every active row left by the previous run, before READY."""
        counts: dict[str, int] = {}
        for job in list(self._store.jobs([s for s in JobState if s.is_active])):
            action = self._guarded_reconcile(job, now)
            counts[action] = counts.get(action, 0) + 1
        for directory in self._output_directories():
            with contextlib.suppress(OSError):
                outputs.remove_stale_temp_files(directory, older_than_seconds=0.0, now=now)
        log.info("reconciled", **counts)

    def _guarded_reconcile(self, job: Job, now: float) -> str:
        inbox = self._inboxes.get(job.inbox)
        if inbox is None:
            return "unknown_inbox"
        if job.error_class is not None:
            self._guarded(
                job,
                now,
                lambda j, n: self._fail(
                    j, j.error_class or ErrorClass.UNREADABLE, j.last_error or "", n
                ),
            )
            return "failing"
        exists = os.path.lexists(job.path)
        if not exists and job.state in (
            JobState.SETTLING,
            JobState.QUEUED,
            JobState.SUBMITTING,
            JobState.SUBMITTED,
        ):
            self._forget(job, "vanished while the daemon was down")
            return "forgotten"
        if job.state is JobState.SETTLING:
            self._resettle(job, now)
            return "settling"
        if job.state is JobState.SUBMITTING:
            # The POST may or may not have reached the service; no task id was recorded.
            self._store.update(job.id, now=now, state=JobState.QUEUED, next_attempt_at=None)
            log.warning("task_resubmit_after_crash", job_id=job.id, path=str(job.path))
            return "resubmit"
        if job.state is JobState.SUBMITTED:
            self._poll_counts[job.id] = 0
            self._store.update(job.id, now=now, next_attempt_at=now)
            return "resume_polling"
        if job.state is JobState.WRITING:
            self._guarded(job, now, self._write_outputs)
            return "rewrite"
        if job.state is JobState.DISPOSING:
            self._guarded(job, now, self._dispose)
            return "dispose"
        return "queued"

    # ----------------------------------------------------------------- watching

    def _outputs_inside_inbox(self, inbox: InboxConfig) -> bool:
        return inbox.output_dir is None or policy.is_within(inbox.output_dir, inbox.path)

    def _output_directories(self) -> Iterator[Path]:
        for inbox in self._inboxes.values():
            yield inbox.output_dir or inbox.path

    def _watch_specs(self) -> list[WatchSpec]:
        specs = []
        for inbox in self._inboxes.values():
            mode, why = policy.choose_watch_mode(inbox.watch, filesystem_type(inbox.path))
            log.info("inbox_watch_mode", inbox=inbox.name, mode=mode.value, reason=why)
            specs.append(
                WatchSpec(
                    name=inbox.name,
                    root=inbox.path,
                    recursive=inbox.recursive,
                    mode=mode if mode is not WatchMode.AUTO else WatchMode.EVENTS,
                    polling_interval_seconds=inbox.polling_interval_seconds,
                )
            )
        return specs

    def _on_event(self, inbox_name: str, path: Path, is_event: bool) -> None:
        self.intake.put((inbox_name, path, is_event))  # called on watchdog threads

    def _check_watchers(self, now: float) -> None:
        assert self._watchers is not None
        problems = self._watchers.check()
        for problem in problems:
            if problem not in self._problems:
                log.warning("inbox_not_watched", problem=problem)
        self._problems = problems
        self._next_watch_check_at = now + WATCH_CHECK_SECONDS


def _apply_outcome(
    apply: Callable[[Job, object, BaseException | None, float], None],
    value: object,
    error: BaseException | None,
    job: Job,
    now: float,
) -> None:
    apply(job, value, error, now)


def _preflight_problem(
    facts: probe.FileFacts, inbox: InboxConfig, *, trial: bool
) -> tuple[str | None, ErrorClass]:
    """Refuse before paying for the API what the service would refuse anyway."""
    kind = facts.kind
    if kind is probe.FileKind.UNKNOWN:
        return "not a supported image or PDF (by its content)", ErrorClass.UNREADABLE
    if kind is probe.FileKind.PDF:
        if facts.is_encrypted:
            return "encrypted PDF: decrypt it first", ErrorClass.UNREADABLE
        if inbox.mode is not Mode.IMAGE:
            return f"PDFs can only be recognised in image inboxes (this one is {inbox.mode})", (
                ErrorClass.UNSUPPORTED
            )
        if trial:
            return "PDFs need credentials: RecognizePdf has no trial mode", ErrorClass.UNSUPPORTED
    elif kind is probe.FileKind.TIFF and (facts.page_count or 1) > 1:
        return (
            f"multi-page TIFF ({facts.page_count} pages): the service takes single-page TIFF only; "
            "convert it to PDF",
            ErrorClass.UNSUPPORTED,
        )
    if facts.problem:
        return facts.problem, ErrorClass.UNREADABLE
    if trial and inbox.mode is not Mode.IMAGE:
        return (
            f"mode {inbox.mode} needs credentials; trial mode only has image",
            ErrorClass.REJECTED,
        )
    return None, ErrorClass.UNREADABLE


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _reason(job: Job, inbox: InboxConfig, now: float) -> dict[str, Any]:
    fp = job.fingerprint
    return {
        "class": job.error_class.value if job.error_class else None,
        "message": job.last_error,
        "http_status": job.http_status,
        "task_id": job.task_id,
        "attempts": job.attempts,
        "source_path": str(job.path),
        "inbox": inbox.name,
        "profile_hash": inbox.profile_hash,
        "mode": (job.mode or inbox.mode).value,
        "sha256": fp.sha256 if fp else None,
        "first_seen_at": _iso(job.first_seen_at),
        "submitted_at": _iso(job.submitted_at),
        "failed_at": _iso(now),
        "ocrwatch_version": __version__,
    }
