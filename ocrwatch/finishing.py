"""The end of a file's job: write its sidecars, dispose of the source, or fail it.

Runs on the control thread only. Each step commits its intent before touching the file
system: WRITING (results stored) before any sidecar is written, DISPOSING before the source
is moved or deleted, and the error class and message before the file goes to the error
folder. Every step is idempotent, so start-up reconciliation can simply run it again.

The source is written for, moved or deleted only while it is still the file that was
recognised (same device, inode, size and mtime); a file replaced meanwhile is settled and
processed again as new content.

A job is finished under the profile it started with (``Profiles.for_job``), even after a
reload changed its inbox. Finishing a file counts it in the metrics and hands its hooks to
the hook runner, which never blocks.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ocrwatch import __version__, outputs, policy, probe, sidecars
from ocrwatch.config import InboxConfig
from ocrwatch.errors import PermanentError
from ocrwatch.hooks import HookEvent, HookRunner
from ocrwatch.metrics import Metrics
from ocrwatch.model import Disposition, ErrorClass, Fingerprint, Job, JobState
from ocrwatch.reload import Profiles
from ocrwatch.store import Store

log = structlog.get_logger(__name__)

OUTPUT_RETRY_SECONDS = 60.0  # a full disk is retried, not failed
FAILURE_RETRY_SECONDS = 60.0  # an unusable error folder is retried

Resettle = Callable[[Job, float], None]


class Finisher:
    """Sidecars, disposal and error-folder moves, each job under its own profile."""

    def __init__(
        self,
        *,
        store: Store,
        profiles: Profiles,
        resettle: Resettle,
        metrics: Metrics,
        hooks: HookRunner,
    ) -> None:
        self._store = store
        self._profiles = profiles
        self._resettle = resettle
        self._metrics = metrics
        self._hooks = hooks
        self.done_count = 0
        self.failed_count = 0

    def _profile(self, job: Job) -> InboxConfig:
        profile = self._profiles.for_job(job)
        if profile is None:
            raise KeyError(f"job {job.id}: inbox {job.inbox!r} is not configured")
        return profile

    def write_outputs(self, job: Job, now: float) -> None:
        """Write every sidecar from the stored results, atomically, then dispose."""
        inbox = self._profile(job)
        if not self._is_still_the_recognised_file(job, now):
            return
        results = self._store.results_for(job.id)
        if results is None:
            # Nothing stored (an old crash): fetch the results again.
            self._store.update(job.id, now=now, state=JobState.SUBMITTED, next_attempt_at=now)
            return
        try:
            files = sidecars.compose(
                results, formats=inbox.result_formats, regions=inbox.settings.regions
            )
        except PermanentError as exc:
            self.fail(job, ErrorClass.TASK_ERROR, str(exc), now)
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
                log.warning("sidecar_write_postponed", job_id=job.id, error=str(exc))
                return
            self.fail(job, ErrorClass.OUTPUT_FAILED, f"cannot write sidecar: {exc}", now)
            return
        job = self._store.update(job.id, now=now, state=JobState.DISPOSING)
        self.dispose(job, now)

    def dispose(self, job: Job, now: float) -> None:
        """Keep, move or delete the source as the profile says; the job is then DONE."""
        inbox = self._profile(job)
        st = _lstat(job.path)
        unchanged = st is not None and _same_file(job.fingerprint, st)
        final: Path | None = job.path if st is not None else None
        if st is not None and unchanged and inbox.on_success is not Disposition.KEEP:
            try:
                final = self._dispose_source(job, inbox)
            except OSError as exc:
                # The sidecars exist: this file is done, only its move or delete waits.
                self._store.update(
                    job.id,
                    now=now,
                    next_attempt_at=now + OUTPUT_RETRY_SECONDS,
                    last_error=f"cannot {inbox.on_success} the source: {exc}",
                )
                log.warning("disposal_postponed", job_id=job.id, path=str(job.path), error=str(exc))
                return
        self._store.update(job.id, now=now, state=JobState.DONE)
        self._profiles.release(job.id)
        self.done_count += 1
        self._metrics.inc("ocrwatch_files_completed_total", inbox=inbox.name)
        log.info("file_done", job_id=job.id, path=str(job.path), task_id=job.task_id)
        self._hooks.submit(
            inbox.hooks,
            HookEvent(
                event="success",
                inbox=inbox.name,
                job_id=job.id,
                source=job.path,
                final_path=final,
                sidecars=_sidecar_paths(job, inbox),
                task_id=job.task_id,
                profile_hash=job.profile_hash,
                at=now,
            ),
        )
        current = self._profiles.current.get(job.inbox)
        if st is not None and not unchanged and current is not None:
            # Replaced after its sidecars were written: the new content is a new file.
            new_job = self._store.add_job(
                inbox=current.name, path=job.path, profile_hash=current.profile_hash, now=now
            )
            self._resettle(new_job, now)

    def _dispose_source(self, job: Job, inbox: InboxConfig) -> Path | None:
        """Where the source is afterwards: moved, kept (``job.path``) or deleted (None)."""
        if inbox.on_success is Disposition.MOVE and inbox.done_dir is not None:
            target = policy.mirrored_path(
                job.path, inbox_root=inbox.path, target_root=inbox.done_dir
            )
            final = outputs.move_file(job.path, Path(target))
            log.info("source_moved", job_id=job.id, path=str(job.path), to=str(final))
            return final
        if inbox.on_success is Disposition.DELETE:
            outputs.delete_file(job.path)
            log.info("source_deleted", job_id=job.id, path=str(job.path))
            return None
        return job.path

    def fail(
        self,
        job: Job,
        error_class: ErrorClass,
        message: str,
        now: float,
        *,
        http_status: int | None = None,
    ) -> None:
        """Move the source to the error folder with a reason file; the intent is committed first.

        Only the content that failed goes there: a file replaced since it was fingerprinted
        (renamed over, rewritten in place) is a new file, processed as such.
        """
        inbox = self._profile(job)
        st = _lstat(job.path)
        if job.fingerprint is not None and st is not None and not _same_file(job.fingerprint, st):
            self._record_replaced_failure(job, error_class, message, now, http_status=http_status)
            return
        job = self._store.update(
            job.id, now=now, error_class=error_class, last_error=message, http_status=http_status
        )
        target = Path(
            policy.mirrored_path(job.path, inbox_root=inbox.path, target_root=inbox.error_dir)
        )
        try:
            final: Path | None = outputs.move_to_error(
                job.path, target, reason=_reason(job, inbox, now)
            )
        except FileNotFoundError:
            final = None  # gone already: nothing to move, the row keeps the reason
        except OSError as exc:
            # The error folder itself is unusable; keep the intent and try again later.
            self._store.update(job.id, now=now, next_attempt_at=now + FAILURE_RETRY_SECONDS)
            log.warning("error_folder_unusable", job_id=job.id, error=str(exc))
            return
        self._store.update(job.id, now=now, state=JobState.FAILED)
        self._profiles.release(job.id)
        self.failed_count += 1
        self._metrics.inc(
            "ocrwatch_files_failed_total", inbox=inbox.name, error_class=error_class.value
        )
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
        self._hooks.submit(
            inbox.hooks,
            HookEvent(
                event="failure",
                inbox=inbox.name,
                job_id=job.id,
                source=job.path,
                final_path=final,
                task_id=job.task_id,
                error_class=error_class.value,
                error=message,
                reason_file=None if final is None else outputs.reason_file_path(final),
                profile_hash=job.profile_hash,
                at=now,
            ),
        )

    def _record_replaced_failure(
        self,
        job: Job,
        error_class: ErrorClass,
        message: str,
        now: float,
        *,
        http_status: int | None,
    ) -> None:
        """The failed content is gone from the path: keep its failure in the history only.

        Nothing is moved, no hook runs and no failure is counted, since no file is left to
        act on; whatever is at the path now is settled and processed as a new file.
        """
        self._store.update(
            job.id,
            now=now,
            state=JobState.FAILED,
            error_class=error_class,
            last_error=f"{message} (not moved: the file was replaced meanwhile)",
            http_status=http_status,
        )
        self._profiles.release(job.id)
        log.info(
            "failed_content_replaced",
            job_id=job.id,
            path=str(job.path),
            error_class=error_class.value,
            message=message,
            task_id=job.task_id,
        )
        current = self._profiles.current.get(job.inbox)
        if current is not None:
            new_job = self._store.add_job(
                inbox=current.name, path=job.path, profile_hash=current.profile_hash, now=now
            )
            self._resettle(new_job, now)

    def retry_pending_failures(self, now: float) -> None:
        """Error moves that could not be done yet (the error folder was unusable)."""
        for job in self.pending_failures():
            if job.next_attempt_at is None or job.next_attempt_at <= now:
                self.fail_again(job, now)

    def fail_again(self, job: Job, now: float) -> None:
        self.fail(
            job,
            job.error_class or ErrorClass.UNREADABLE,
            job.last_error or "",
            now,
            http_status=job.http_status,
        )

    def pending_failures(self) -> Iterator[Job]:
        for job in self._store.jobs([s for s in JobState if s.is_active]):
            if job.error_class is not None:
                yield job

    def _is_still_the_recognised_file(self, job: Job, now: float) -> bool:
        st = _lstat(job.path)
        if st is None:
            self._store.update(
                job.id,
                now=now,
                state=JobState.DONE,
                last_error="the source vanished before its sidecar was written",
            )
            log.warning("source_vanished", job_id=job.id, path=str(job.path))
            return False
        if _same_file(job.fingerprint, st):
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


def _sidecar_paths(job: Job, inbox: InboxConfig) -> tuple[Path, ...]:
    """Where this job's sidecars were written (for its hooks)."""
    try:
        targets = policy.output_paths(
            job.path,
            inbox_root=inbox.path,
            output_dir=inbox.output_dir,
            template=inbox.output_template,
            formats=inbox.result_formats,
            inbox_name=inbox.name,
        )
    except ValueError:
        return ()
    return tuple(Path(target) for target in targets.values())


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _same_file(fingerprint: Fingerprint | None, st: os.stat_result) -> bool:
    return fingerprint is not None and (
        fingerprint.device,
        fingerprint.inode,
        fingerprint.size,
        fingerprint.mtime_ns,
    ) == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _reason(job: Job, inbox: InboxConfig, now: float) -> dict[str, Any]:
    """The content of ``<name>.error.json``: everything an operator needs, no secrets."""
    fp = job.fingerprint
    # A file that fails before upload was never fingerprinted: measure it now, before the move.
    size, sha256 = (fp.size, fp.sha256) if fp else probe.measure(job.path)
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
        "sha256": sha256,
        "size_bytes": size,
        "first_seen_at": _iso(job.first_seen_at),
        "submitted_at": _iso(job.submitted_at),
        "failed_at": _iso(now),
        "ocrwatch_version": __version__,
    }
