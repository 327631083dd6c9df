"""The write side of the job table, and ``Store``, the class the daemon and the CLI open.

The daemon commits a job's state *before* the side effect it announces, so each method here is
one all-or-nothing write (see ``database``) that a restart can act on.

Invariants and hazards:

- At most one *active* job per path: inserting or moving a job onto a path that has one raises
  ``DuplicateJob`` (the partial unique index in ``schema`` enforces it).
- ``update`` takes the fields to change by name and refuses identity and timestamps, which are
  the store's; ``expect_state`` turns a decision made on a stale row into ``StaleJob``.
- No result-size cap: a result set is what the API returned for one bounded upload; SQLite's own
  1 GB value limit is the ceiling, and ``prune`` removes results together with their rows.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypedDict, Unpack

from ocrwatch.model import (
    AccountPause,
    ErrorClass,
    Fingerprint,
    Job,
    JobState,
    Mode,
    ResultFile,
)
from ocrwatch.store.queries import JobNotFound, JobQueries
from ocrwatch.store.rows import INSERT, UPDATE, fingerprint_values, job_values, require_absolute
from ocrwatch.store.schema import FINISHED_SQL


class DuplicateJob(LookupError):
    """An active job already exists for this path; ``existing`` is that job."""

    def __init__(self, existing: Job) -> None:
        self.existing = existing
        super().__init__(f"job {existing.id} is already {existing.state} for {existing.path}")


class StaleJob(RuntimeError):
    """The row's state is no longer the one the caller's decision was based on."""

    def __init__(self, current: Job, *, expected: JobState) -> None:
        self.current = current
        self.expected = expected
        super().__init__(f"job {current.id} is {current.state}, expected {expected}")


class JobChanges(TypedDict, total=False):
    """The ``Job`` fields ``Store.update`` may change; identity and timestamps are the store's."""

    state: JobState
    fingerprint: Fingerprint | None
    mode: Mode | None
    task_id: str | None
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    error_class: ErrorClass | None
    http_status: int | None
    submitted_at: float | None
    path: Path


_CHANGEABLE: Final = frozenset(JobChanges.__annotations__)


class Store(JobQueries):
    """The open state database. Build it with ``Store.open``; use it from one thread."""

    def add_job(
        self,
        *,
        inbox: str,
        path: Path,
        profile_hash: str,
        state: JobState = JobState.SETTLING,
        fingerprint: Fingerprint | None = None,
        now: float,
    ) -> Job:
        """Insert a new job; ``DuplicateJob`` if ``path`` already has an active one."""
        require_absolute(path)
        state = JobState(state)
        with self._write(single_statement=True) as conn:
            try:
                cursor = conn.execute(
                    INSERT,
                    {
                        "inbox": inbox,
                        "path": os.fsencode(path),
                        "state": state.value,
                        "profile_hash": profile_hash,
                        **fingerprint_values(fingerprint),
                        "mode": None,
                        "task_id": None,
                        "attempts": 0,
                        "next_attempt_at": None,
                        "last_error": None,
                        "error_class": None,
                        "http_status": None,
                        "first_seen_at": now,
                        "submitted_at": None,
                        "updated_at": now,
                        "finished_at": None if state.is_active else now,
                    },
                )
            except sqlite3.IntegrityError:
                self._raise_duplicate(path)
                raise
        assert cursor.lastrowid is not None
        return Job(
            id=cursor.lastrowid,
            inbox=inbox,
            path=path,
            state=state,
            profile_hash=profile_hash,
            fingerprint=fingerprint,
            first_seen_at=now,
            updated_at=now,
        )

    def get_or_add_job(
        self,
        *,
        inbox: str,
        path: Path,
        profile_hash: str,
        state: JobState = JobState.SETTLING,
        fingerprint: Fingerprint | None = None,
        now: float,
    ) -> tuple[Job, bool]:
        """The active job for ``path``, or a new one; the flag says whether it was created."""
        with self._write(single_statement=True):
            existing = self.active_job_for(path)
            if existing is not None:
                return existing, False
            job = self.add_job(
                inbox=inbox,
                path=path,
                profile_hash=profile_hash,
                state=state,
                fingerprint=fingerprint,
                now=now,
            )
            return job, True

    def update(
        self,
        job_id: int,
        *,
        now: float,
        expect_state: JobState | None = None,
        **changes: Unpack[JobChanges],
    ) -> Job:
        """Change some fields of a job; ``StaleJob`` if its state is not ``expect_state``.

        Entering done or failed stamps ``finished_at``; leaving them clears it.
        """
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise TypeError(f"Store.update cannot change {sorted(unknown)}")
        if "path" in changes:
            require_absolute(changes["path"])
        with self._write(single_statement=True) as conn:
            current = self.get(job_id)
            if expect_state is not None and current.state != expect_state:
                raise StaleJob(current, expected=expect_state)
            if "state" in changes:
                changes["state"] = JobState(changes["state"])
            job = dataclasses.replace(current, **changes, updated_at=now)
            values = job_values(job)
            values["now"] = now
            values["finished"] = not job.state.is_active
            try:
                conn.execute(UPDATE, values)
            except sqlite3.IntegrityError:
                self._raise_duplicate(job.path)
                raise
            return job

    def save_results(self, job_id: int, results: Sequence[ResultFile]) -> None:
        """Store (replacing any earlier set) the fetched results of a job."""
        with self._write() as conn:
            if (
                conn.execute(
                    "UPDATE jobs SET result_count = ? WHERE id = ?", (len(results), job_id)
                ).rowcount
                == 0
            ):
                raise JobNotFound(job_id)
            conn.execute("DELETE FROM results WHERE job_id = ?", (job_id,))
            conn.executemany(
                "INSERT INTO results (job_id, seq, type, data) VALUES (?, ?, ?, ?)",
                [(job_id, seq, r.type, zlib.compress(r.data)) for seq, r in enumerate(results)],
            )

    def set_account_pause(self, pause: AccountPause | None) -> None:
        """Record the pause on submissions (None: lifted)."""
        with self._write(single_statement=True) as conn:
            if pause is None:
                conn.execute("DELETE FROM account_pause")
                return
            conn.execute(
                "INSERT OR REPLACE INTO account_pause (id, reason, http_status, since, probe_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (pause.reason, pause.http_status, pause.since, pause.probe_at),
            )

    def delete(self, job_id: int) -> bool:
        """Forget a job and its results; False if there was no such job."""
        with self._write(single_statement=True) as conn:
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def prune(self, *, finished_before: float) -> int:
        """Delete rows finished before the cutoff, keeping each duplicate-cache entry.

        The row ``find_done_results`` would answer for each (sha256, profile_hash) survives, so
        pruning history never makes a known file cost another task. Returns rows deleted.
        """
        with self._write(single_statement=True) as conn:
            return conn.execute(
                f"""DELETE FROM jobs WHERE state IN {FINISHED_SQL} AND finished_at < ?
                AND id NOT IN (SELECT id FROM (
                    SELECT id, row_number() OVER (
                        PARTITION BY sha256, profile_hash ORDER BY finished_at DESC, id DESC
                    ) AS newness
                    FROM jobs
                    WHERE state = 'done' AND sha256 IS NOT NULL AND result_count IS NOT NULL
                ) WHERE newness = 1)""",
                (finished_before,),
            ).rowcount

    def _raise_duplicate(self, path: Path) -> None:
        existing = self.active_job_for(path)
        if existing is not None:
            raise DuplicateJob(existing)
