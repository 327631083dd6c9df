"""Hold submissions while the account's plan or quota refuses calls, and resume after.

The dispatcher asks ``Account`` whether a submission may go, tells it about every request it
sends and every answer, and hands it each refusal. The decision itself is the pure
``quota.QuotaPause``; this module keeps its record in the store (so ``ocrwatch status``,
``doctor`` and a restart see the pause), schedules the refused job, counts and logs.

A refused file is never failed: a queued one stays QUEUED with its attempt given back, and a
submitted one stays SUBMITTED and is polled again once the pause allows.
"""

from __future__ import annotations

import structlog

from ocrwatch.errors import ApiRejected, QuotaExhausted
from ocrwatch.metrics import Metrics
from ocrwatch.model import AccountPause, Job, JobState
from ocrwatch.quota import QuotaPause
from ocrwatch.store import Store

log = structlog.get_logger(__name__)

REFUSAL_STATUSES = (402, 403)


class Account:
    """The account pause of one daemon, kept in its store."""

    def __init__(self, *, store: Store, metrics: Metrics, probe_seconds: float) -> None:
        self._store = store
        self._metrics = metrics
        self._pause = QuotaPause(probe_seconds, record=store.account_pause())

    @property
    def pause(self) -> AccountPause | None:
        """The pause in force, if any."""
        return self._pause.record

    def allows_submit(self, now: float) -> bool:
        return self._pause.allows_submit(now)

    def allows_poll(self, now: float) -> bool:
        return self._pause.allows_poll(now)

    def next_probe_at(self) -> float | None:
        """When the loop must wake for the next probe; None if none is waiting."""
        record = self._pause.record
        return None if record is None or self._pause.probe_key is not None else record.probe_at

    def probe_now(self, now: float) -> None:
        """A person asked (a reload, a one-shot run): probe a pause now, not at its time."""
        before = self._pause.record
        self._set(self._pause.probe_now(now))
        if before is not None and before.probe_at > now:
            # A held poll waits for the old probe time: it must be able to be the probe.
            self._release_held_polls(now)

    def on_submit(self, job_id: int) -> None:
        self._pause = self._pause.on_submit(job_id)

    def on_poll(self, job_id: int) -> None:
        self._pause = self._pause.on_poll(job_id)

    def on_finished(self, job_id: int) -> None:
        self._pause = self._pause.on_finished(job_id)

    def forget(self, job_id: int) -> None:
        self._pause = self._pause.forget(job_id)

    def blames_the_file(self, job_id: int, error: QuotaExhausted) -> bool:
        """A 403 that is this file's, not the account's (``QuotaPause.blames_the_file``)."""
        if not self._pause.blames_the_file(job_id, error.status_code):
            return False
        self.forget(job_id)
        log.warning("quota_refusal_blames_file", job_id=job_id, http_status=error.status_code)
        return True

    def refused(
        self, job: Job, error: QuotaExhausted, now: float, *, state: JobState, attempts: int
    ) -> None:
        """The plan or quota refused the job's request: pause (longer); the file waits."""
        was_paused = self._pause.is_paused
        self._set(
            self._pause.on_refused(
                now,
                job.id,
                reason=str(error),
                http_status=error.status_code,
                is_poll=state is JobState.SUBMITTED,
                retry_after_seconds=error.retry_after_seconds,
            )
        )
        record = self._pause.record
        assert record is not None
        # A queued file is held by the pause itself; a poll waits for the probe time.
        self._store.update(
            job.id,
            now=now,
            state=state,
            attempts=max(0, attempts),
            next_attempt_at=now if state is JobState.QUEUED else record.probe_at,
            last_error=str(error),
            http_status=error.status_code,
        )
        self._metrics.inc("ocrwatch_quota_refusals_total", status=str(error.status_code))
        if not was_paused:
            log.error(
                "quota_paused",
                reason=str(error),
                http_status=error.status_code,
                probe_in_seconds=round(record.probe_at - now, 1),
            )
        else:
            log.info("quota_still_refused", job_id=job.id, http_status=error.status_code)

    def accepted(self, job_id: int, now: float) -> None:
        """The service accepted the job's request; the probe's acceptance ends the pause."""
        before = self._pause.record
        self._set(self._pause.on_accepted(job_id))
        if before is None or self._pause.record is not None:
            return
        released = self._release_held_polls(now)
        log.info("quota_resumed", paused_seconds=round(now - before.since, 1), released=released)

    def _release_held_polls(self, now: float) -> int:
        """Polls refused and held until a probe time may go now; returns how many."""
        held = [
            job
            for job in self._store.jobs([JobState.SUBMITTED])
            if job.http_status in REFUSAL_STATUSES and (job.next_attempt_at or now) > now
        ]
        with self._store.batch():
            for job in held:
                self._store.update(job.id, now=now, next_attempt_at=now, http_status=None)
        return len(held)

    def _set(self, pause: QuotaPause) -> None:
        if pause.record != self._pause.record:
            self._store.set_account_pause(pause.record)
        self._pause = pause


def refusal_of_the_file(error: QuotaExhausted) -> ApiRejected:
    """The error a file gets when the refusal is its own (the service rejects it)."""
    return ApiRejected(
        f"{error}; but only this file: it was still refused after the service had accepted "
        "other calls twice since, so a rule of the service refuses this file, not the account",
        status_code=error.status_code,
    )
