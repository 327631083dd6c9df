"""Talking to the OCR service: submit queued files, poll submitted tasks, apply the answers.

The HTTP calls run on two small worker pools; their outcomes come back to the control thread
through ``collect``, which applies them to the store. A row is SUBMITTING before its POST is
handed to a worker, so a crash while the call is in flight is seen at start-up.

Failures are classified here. Transient ones (network, 429, 5xx) never consume a file's
attempts and feed one circuit breaker for the whole service: an outage pauses the daemon
instead of emptying the inbox into the error folder. Only a POST whose outcome is unknown,
or a task that vanished or overran its deadline, counts as an attempt.

Each job is submitted with the settings of the profile it started with (``Profiles.for_job``),
even after a reload changed its inbox. The workers time every API call into the metrics'
latency histogram (``Metrics`` is safe to update from any thread).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from ocrwatch import conversion, probe
from ocrwatch.account import Account, refusal_of_the_file
from ocrwatch.aspose import OcrApi
from ocrwatch.config import InboxConfig, ServiceConfig
from ocrwatch.errors import (
    ApiRejected,
    AuthenticationError,
    ConfigError,
    InputFileError,
    PayloadTooLarge,
    PermanentError,
    QuotaExhausted,
    SourceChanged,
    SourceVanished,
    SubmitOutcomeUnknown,
    TransientError,
)
from ocrwatch.finishing import Finisher, Resettle
from ocrwatch.metrics import Metrics
from ocrwatch.model import ErrorClass, Job, JobState, Mode, TaskResult, TaskStatus
from ocrwatch.reload import Profiles
from ocrwatch.schedule import (
    Breaker,
    BreakerState,
    PollAction,
    ProcessingEstimate,
    ServiceHealth,
    decide_poll,
    first_poll_delay,
    release_at,
    retry_at,
)
from ocrwatch.store import Store
from ocrwatch.workers import Outcome, WorkerPool

log = structlog.get_logger(__name__)

LATENCY = "ocrwatch_api_request_duration_seconds"
AUTH_PAUSE_SECONDS = 300.0  # refused credentials: ask again rarely (the token endpoint locks out)

Step = Callable[[Job, float], None]
Guard = Callable[[Job, float, Step], None]


class Dispatcher:
    """Uploads and polls for every inbox, within ``max_in_flight`` and the breaker."""

    def __init__(
        self,
        service: ServiceConfig,
        *,
        api: OcrApi,
        store: Store,
        profiles: Profiles,
        finisher: Finisher,
        resettle: Resettle,
        guard: Guard,
        wake: Callable[[], None],
        rng: random.Random,
        metrics: Metrics,
    ) -> None:
        self._service = service
        self._api = api
        self._store = store
        self._profiles = profiles
        self._metrics = metrics
        self._finisher = finisher
        self._resettle = resettle
        self._guard = guard
        self._rng = rng
        self._uploads: WorkerPool[int] = WorkerPool(
            "upload", size=service.upload_concurrency, on_finished=wake
        )
        self._polls: WorkerPool[int] = WorkerPool(
            "poll", size=service.poll_concurrency, on_finished=wake
        )
        self.breaker = Breaker(
            threshold=service.breaker_threshold, probe_seconds=service.breaker_probe_seconds
        )
        self.estimate = ProcessingEstimate()
        self.health = ServiceHealth()
        # The account's refusals (plan, quota) hold submissions; kept across restarts.
        self.account = Account(
            store=store, metrics=metrics, probe_seconds=service.quota_probe_seconds
        )
        self._poll_counts: dict[int, int] = {}
        self._transient_failures: dict[int, int] = {}
        # The end of the Retry-After each job's last answer carried: nothing sends its next
        # request earlier, not even the release after an outage.
        self._not_before: dict[int, float] = {}
        # Jobs whose next poll is late for reasons other than the service (a restart):
        # what that poll sees must not teach the processing-time estimate.
        self._unlearnable: set[int] = set()

    # ----------------------------------------------------------------- state

    @property
    def busy_count(self) -> int:
        return self._uploads.busy_count + self._polls.busy_count

    @property
    def running_count(self) -> int:
        return self._uploads.running_count + self._polls.running_count

    @property
    def is_paused(self) -> bool:
        return self.breaker.state is not BreakerState.CLOSED

    def resume(self, job_id: int) -> None:
        """A task left by the previous run: poll it now, learn nothing from that poll."""
        self._unlearnable.add(job_id)

    def forget(self, job_id: int) -> None:
        self.account.forget(job_id)
        self._poll_counts.pop(job_id, None)
        self._transient_failures.pop(job_id, None)
        self._not_before.pop(job_id, None)
        self._unlearnable.discard(job_id)

    @property
    def uploads_running(self) -> int:
        return self._uploads.busy_count

    def close(self, *, timeout_seconds: float) -> None:
        self._uploads.close(timeout_seconds=timeout_seconds)
        self._polls.close(timeout_seconds=timeout_seconds)

    def next_due_at(self, now: float, *, horizon: float) -> float:
        """When the next submission or poll falls due, up to ``horizon``."""
        if not self.breaker.allows_request(now):
            if self.breaker.state is BreakerState.OPEN:
                return min(horizon, max(now, self.breaker.open_until))
            return horizon  # half-open with its probes out: their answers wake the loop
        # Only work that could start now counts; a finishing worker wakes the loop anyway.
        states = (
            [JobState.SUBMITTED]
            if self._polls.capacity > 0 and self.account.allows_poll(now)
            else []
        )
        if (probe_at := self.account.next_probe_at()) is not None and probe_at > now:
            # Wake for the probe time; once it has come, the due work below is the probe
            # (with none, e.g. the inbox emptied during the pause, there is nothing to wake for).
            horizon = min(horizon, probe_at)
        if (
            self._uploads.capacity > 0
            and self.account.allows_submit(now)
            and self._store.count_in_flight() < self._service.max_in_flight
        ):
            states.append(JobState.QUEUED)
        if not states:
            return horizon
        # Jobs whose poll is already running are due too; look past them.
        for job in self._store.due(states, now=horizon, limit=self._polls.busy_count + 1):
            if not self._polls.is_busy_with(job.id):
                return min(horizon, job.next_attempt_at or now)
        return horizon

    def send_due(self, now: float) -> None:
        """Start the uploads and polls that are due.

        While the breaker probes, the breaker, not each file's backoff, paces the requests: if
        nothing is due, the file waiting out a failure's backoff is brought forward to be the
        probe (never before its Retry-After), so a service that comes back after a long outage
        is found within ``breaker_probe_seconds`` however few files wait. Polls go first then,
        and a waiting poll is preferred as the probe: a GET costs a down service less than an
        upload of a whole file.
        """
        if self.breaker.state is BreakerState.CLOSED:
            self.submit_due(now)
            self.poll_due(now)
            return
        if self.breaker.allows_request(now):
            self._bring_probe_forward(now)
        self.poll_due(now)
        self.submit_due(now)

    def _bring_probe_forward(self, now: float) -> None:
        waiting: dict[JobState, list[Job]] = {JobState.SUBMITTED: [], JobState.QUEUED: []}
        for job_id in self._transient_failures:
            try:
                job = self._store.get(job_id)
            except LookupError:
                continue
            if job.state not in waiting or job.error_class is not None:
                continue
            not_before = self._not_before.get(job_id)
            if release_at(now, scheduled_at=job.next_attempt_at, not_before=not_before) == now:
                waiting[job.state].append(job)
        for state, jobs in waiting.items():  # polls first
            due = self._store.due([state], now=now, limit=self._polls.busy_count + 1)
            if any(not self._polls.is_busy_with(job.id) for job in due):
                return  # one is due already: it is the probe
            if jobs:
                probe = min(jobs, key=lambda job: job.next_attempt_at or now)
                self._store.update(probe.id, now=now, next_attempt_at=now)
                return

    # ----------------------------------------------------------------- submitting

    def submit_due(self, now: float) -> None:
        capacity = min(
            self._uploads.capacity,
            self._service.max_in_flight - self._store.count_in_flight(),
        )
        if capacity <= 0 or not self.breaker.allows_request(now):
            return
        if not self.account.allows_submit(now):
            return
        for job in self._fair_due(JobState.QUEUED, now, capacity):
            inbox = self._profiles.for_job(job)
            if inbox is None or job.error_class is not None:
                continue  # failing already (its error move is pending), or an unknown inbox
            if not self.breaker.allows_request(now) or not self.account.allows_submit(now):
                break
            self.breaker = self.breaker.on_request(now)
            self.account.on_submit(job.id)
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
            self._store.due([state], now=now, limit=limit, inbox=name)
            for name in self._profiles.names()
        ]
        chosen: list[Job] = []
        for round_ in range(limit):
            for jobs in per_inbox:
                if round_ < len(jobs) and len(chosen) < limit:
                    chosen.append(jobs[round_])
        return chosen

    def _upload_work(self, job: Job, inbox: InboxConfig) -> Callable[[], object]:
        api, path, fingerprint, mode = self._api, job.path, job.fingerprint, job.mode
        metrics, target = self._metrics, self._service.target
        if fingerprint is None or mode is None:
            raise ValueError(f"job {job.id} was queued without a fingerprint and mode")

        def upload() -> str:
            try:
                opened = probe.open_for_upload(path, expected=fingerprint)
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise SourceVanished(f"{path} is no longer there") from exc
            with opened as source:
                # What the target does not take as it is goes converted (without loss).
                body = conversion.for_upload(source, mode=mode, target=target)
                started = time.monotonic()
                try:
                    return api.submit(mode, body, inbox.settings)
                finally:
                    metrics.observe(LATENCY, time.monotonic() - started, operation="submit")

        return upload

    def _apply_upload(self, job: Job, outcome: Outcome[int], now: float) -> None:
        error = outcome.error
        self._count_failure("submit", error)
        if error is None:
            task_id = str(outcome.value)
            self._service_answered(now)
            self.account.accepted(job.id, now)
            self._transient_failures.pop(job.id, None)
            self._not_before.pop(job.id, None)
            self._poll_counts[job.id] = 0
            self._store.update(
                job.id,
                now=now,
                state=JobState.SUBMITTED,
                task_id=task_id,
                http_status=None,  # a 429 or 5xx met by an earlier try is history now
                submitted_at=now,
                next_attempt_at=now + first_poll_delay(self.estimate.seconds),
            )
            self._metrics.inc("ocrwatch_tasks_submitted_total", inbox=job.inbox)
            log.info(
                "task_submitted",
                path=str(job.path),
                job_id=job.id,
                task_id=task_id,
                attempt=job.attempts,
            )
            return
        if isinstance(error, SourceVanished):
            # Deleted, or its folder renamed, after it settled: nothing to fail. If it lives
            # on under another name in an inbox, discovery finds it there as a new file.
            self.breaker = self.breaker.on_abandoned()
            self.forget(job.id)
            self._profiles.release(job.id)
            self._store.delete(job.id)
            log.info("file_vanished", job_id=job.id, path=str(job.path), state=job.state.value)
        elif isinstance(error, SourceChanged):
            self.breaker = self.breaker.on_abandoned()
            job = self._store.update(
                job.id, now=now, state=JobState.SETTLING, attempts=job.attempts - 1
            )
            self._resettle(job, now)
        elif isinstance(error, SubmitOutcomeUnknown):
            # The task may exist and be billed; we cannot learn its id. Count the attempt.
            self._transient(job, error, now, state=JobState.QUEUED, counts_attempt=True)
        elif isinstance(error, AuthenticationError):
            self._auth_failed(job, error, now, state=JobState.QUEUED, attempts=job.attempts - 1)
        elif isinstance(error, QuotaExhausted):
            self._service_answered(now)  # the service is up; the account is what refuses
            if self.account.blames_the_file(job.id, error):
                self._permanent(job, refusal_of_the_file(error), now)
            else:
                attempts = job.attempts - 1
                self.account.refused(job, error, now, state=JobState.QUEUED, attempts=attempts)
        elif isinstance(error, TransientError):
            self._transient(job, error, now, state=JobState.QUEUED, counts_attempt=False)
        else:
            self.breaker = self.breaker.on_abandoned()
            self._permanent(job, error, now)

    # ----------------------------------------------------------------- polling

    def poll_due(self, now: float) -> None:
        capacity = self._polls.capacity
        if capacity <= 0:
            return
        for job in self._store.due([JobState.SUBMITTED], now=now, limit=capacity * 2):
            if self._polls.capacity <= 0 or not self.breaker.allows_request(now):
                break
            if not self.account.allows_poll(now):
                break
            if self._polls.is_busy_with(job.id) or job.task_id is None or job.mode is None:
                continue
            if job.error_class is not None or self._profiles.for_job(job) is None:
                continue
            self.breaker = self.breaker.on_request(now)
            self.account.on_poll(job.id)
            self._polls.submit(job.id, self._poll_work(job.task_id, job.mode))

    def _poll_work(self, task_id: str, mode: Mode) -> Callable[[], object]:
        api, metrics = self._api, self._metrics
        probe_first = self._service.use_status_probe and not api.is_trial

        def poll() -> TaskResult:
            started = time.monotonic()
            try:
                if probe_first:
                    status = api.status(task_id, mode=mode)
                    if status.task_status is not TaskStatus.COMPLETED:
                        return status
                return api.fetch(task_id, mode=mode)
            finally:
                metrics.observe(LATENCY, time.monotonic() - started, operation="poll")

        return poll

    def _apply_poll(self, job: Job, outcome: Outcome[int], now: float) -> None:
        if job.state is not JobState.SUBMITTED or job.error_class is not None:
            self.breaker = self.breaker.on_abandoned()  # it may have been the breaker's probe
            return
        error, value = outcome.error, outcome.value
        self._count_failure("poll", error)
        if isinstance(error, AuthenticationError):
            self._auth_failed(job, error, now, state=JobState.SUBMITTED, attempts=job.attempts)
            return
        if isinstance(error, QuotaExhausted):
            self._service_answered(now)
            if not self.account.blames_the_file(job.id, error):
                attempts = job.attempts
                self.account.refused(job, error, now, state=JobState.SUBMITTED, attempts=attempts)
                return
            error = refusal_of_the_file(error)  # as any rejected poll: the task is gone
        if isinstance(error, TransientError):
            self._transient(job, error, now, state=JobState.SUBMITTED, counts_attempt=False)
            return
        if isinstance(error, ApiRejected):
            # The service refuses to tell us about this id; treat the task as gone.
            value = TaskResult(
                task_id=job.task_id or "", task_status=TaskStatus.NOT_EXIST, response_status=None
            )
        elif error is not None or not isinstance(value, TaskResult):
            self.breaker = self.breaker.on_abandoned()
            self._permanent(job, error or TypeError(f"unexpected poll result {value!r}"), now)
            return
        self._service_answered(now)
        self.account.accepted(job.id, now)
        self._apply_task_status(job, value, now)

    def _apply_task_status(self, job: Job, result: TaskResult, now: float) -> None:
        # A poll delayed by failures or an outage says nothing about processing time.
        had_failures = self._transient_failures.pop(job.id, None) is not None
        self._not_before.pop(job.id, None)
        resumed = job.id in self._unlearnable
        self._unlearnable.discard(job.id)
        polls = self._poll_counts.get(job.id, 0) + 1
        self._poll_counts[job.id] = polls
        submitted_at = job.submitted_at or now
        lateness = now - (job.next_attempt_at or now)
        on_schedule = (
            not had_failures and not resumed and lateness < max(0.5, 0.25 * (now - submitted_at))
        )
        if on_schedule and result.task_status is not TaskStatus.NOT_EXIST:
            # Whatever happens, the first poll must come well before the deadline.
            self.estimate = self.estimate.observe(
                elapsed_seconds=now - submitted_at,
                finished=result.task_status.is_finished,
                polls=polls,
                cap_seconds=self._service.task_deadline_seconds / 4,
            )
        decision = decide_poll(
            result.task_status,
            now=now,
            submitted_at=submitted_at,
            polls_so_far=polls,
            attempts=job.attempts,
            max_attempts=self._service.max_attempts,
            deadline_seconds=self._service.task_deadline_seconds,
            estimate_seconds=self.estimate.seconds,
        )
        log.debug(
            "task_polled", job_id=job.id, task_id=job.task_id, status=result.task_status.value
        )
        if decision.action is PollAction.WAIT:
            # It answered: a status kept from an earlier failure no longer describes the job.
            self._store.update(job.id, now=now, next_attempt_at=decision.poll_at, http_status=None)
            return
        self._poll_counts.pop(job.id, None)
        if decision.action is PollAction.RESUBMIT:
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
            messages = "; ".join(result.messages)
            reason = f"{decision.reason}: {messages}" if messages else decision.reason
            self._finisher.fail(job, decision.error_class or ErrorClass.TASK_ERROR, reason, now)
        else:
            with self._store.batch():
                self._store.save_results(job.id, result.results)
                job = self._store.update(job.id, now=now, state=JobState.WRITING)
            log.info(
                "task_completed",
                job_id=job.id,
                task_id=job.task_id,
                seconds=round(now - submitted_at, 3),
            )
            self._finisher.write_outputs(job, now)

    # ----------------------------------------------------------------- outcomes

    def collect(self, now: float) -> None:
        """Apply every finished upload and poll, each as its own guarded unit of work."""
        for pool, apply in ((self._uploads, self._apply_upload), (self._polls, self._apply_poll)):
            for outcome in pool.take_finished():
                job = self._store.get(outcome.key)
                self._guard(job, now, _Applier(apply, outcome))
                self.account.on_finished(outcome.key)

    def _count_failure(self, operation: str, error: BaseException | None) -> None:
        if isinstance(error, AuthenticationError):
            kind = "authentication"
        elif isinstance(error, QuotaExhausted):
            kind = "quota"
        elif isinstance(error, TransientError):
            kind = "transient"
        elif isinstance(error, ApiRejected):
            kind = "rejected"
        else:
            return  # a success, or a problem of the file rather than of the API
        self._metrics.inc("ocrwatch_api_failures_total", operation=operation, kind=kind)

    def _service_answered(self, now: float) -> None:
        """The service answered. Once it is back, files stop waiting out their own backoff."""
        was_paused = self.breaker.state is not BreakerState.CLOSED
        was_answering = self.health.is_answering(now)
        self.breaker = self.breaker.on_success()
        self.health = self.health.on_success(now)
        if self.breaker.state is BreakerState.CLOSED and (was_paused or not was_answering):
            self._release_backoffs(now, after_outage=was_paused)

    def _release_backoffs(self, now: float, *, after_outage: bool) -> None:
        """Bring the files waiting out a failure's backoff forward, never past a Retry-After."""
        released = 0
        with self._store.batch():
            for job_id in list(self._transient_failures):
                try:
                    job = self._store.get(job_id)
                except LookupError:
                    continue
                if job.state not in (JobState.QUEUED, JobState.SUBMITTED):
                    continue
                when = release_at(
                    now, scheduled_at=job.next_attempt_at, not_before=self._not_before.get(job_id)
                )
                if when is not None:
                    self._store.update(job_id, now=now, next_attempt_at=when)
                    released += 1
        if after_outage:
            log.info("service_recovered", released=released)

    def _transient(
        self, job: Job, error: TransientError, now: float, *, state: JobState, counts_attempt: bool
    ) -> None:
        failures = self._transient_failures.get(job.id, 0) + 1
        self._transient_failures[job.id] = failures
        was_closed = self.breaker.state is BreakerState.CLOSED
        self.breaker = self.breaker.on_failure(now, retry_after_seconds=error.retry_after_seconds)
        if was_closed and self.breaker.state is BreakerState.OPEN:
            log.error("breaker_opened", reason=str(error), until=self.breaker.open_until)
        # A SUBMITTING row already counted this POST; only an unknown outcome keeps the count.
        attempts = job.attempts
        if state is JobState.QUEUED and not counts_attempt:
            attempts = max(0, job.attempts - 1)
        if counts_attempt and attempts >= self._service.max_attempts:
            self._finisher.fail(
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
            service_answering=self.health.is_answering(now),
        )
        if error.retry_after_seconds is not None:
            self._not_before[job.id] = now + error.retry_after_seconds
        self._store.update(
            job.id,
            now=now,
            state=state,
            attempts=attempts,
            next_attempt_at=when,
            last_error=str(error),
            http_status=error.status_code,
        )
        # A probe's failure is no news once breaker_opened said the service is down; as a
        # warning it would repeat every breaker_probe_seconds for as long as the outage lasts.
        emit = log.warning if was_closed else log.debug
        emit(
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
        self.breaker = replace(
            self.breaker.on_failure(now, retry_after_seconds=AUTH_PAUSE_SECONDS),
            state=BreakerState.OPEN,
            open_until=now + AUTH_PAUSE_SECONDS,
        )
        self._store.update(
            job.id,
            now=now,
            state=state,
            attempts=max(0, attempts),
            # The pause lives in the breaker, in memory, not in the row: it belongs to the
            # credential, and a restart (with a corrected secret) must try again at once.
            next_attempt_at=None,
            last_error=str(error),
        )
        log.error("authentication_failed", error=str(error), paused_seconds=AUTH_PAUSE_SECONDS)

    def _permanent(self, job: Job, error: BaseException, now: float) -> None:
        self.forget(job.id)
        if isinstance(error, PayloadTooLarge):
            self._finisher.fail(
                job, ErrorClass.TOO_LARGE, str(error), now, http_status=error.status_code
            )
        elif isinstance(error, ApiRejected):
            self._finisher.fail(
                job, ErrorClass.REJECTED, str(error), now, http_status=error.status_code
            )
        elif isinstance(error, InputFileError):
            self._finisher.fail(job, ErrorClass.UNREADABLE, str(error), now)
        elif isinstance(error, ConfigError | PermanentError):
            self._finisher.fail(job, ErrorClass.REJECTED, str(error), now)
        else:
            log.error("job_step_crashed", job_id=job.id, error=repr(error))
            self._finisher.fail(job, ErrorClass.UNREADABLE, f"internal error: {error!r}", now)


class _Applier:
    """Binds one finished outcome to the function that applies it (a guarded step)."""

    def __init__(self, apply: Callable[[Job, Outcome[int], float], None], outcome: Outcome[int]):
        self._apply = apply
        self._outcome = outcome

    def __call__(self, job: Job, now: float) -> None:
        self._apply(job, self._outcome, now)
