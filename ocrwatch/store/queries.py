"""The read side of the job table: lookups, due work, listings, counts and saved results.

Invariants and hazards:

- Reads take no transaction of their own: each query sees the committed rows (and, inside a
  ``batch()``, that batch's own writes) as of its execution.
- ``due()`` and ``oldest_waiting()`` are shaped to the indexes in ``schema``; a query that sorts
  by an expression would scan every row of a state on every tick.
- Saved results are zlib-compressed; a result that no longer decompresses is a damaged store
  (``StateStoreError``), not a missing result.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Final

from ocrwatch.errors import StateStoreError
from ocrwatch.model import AccountPause, Job, JobState, ResultFile
from ocrwatch.store.database import Database
from ocrwatch.store.rows import SELECT, decode, job_from_row
from ocrwatch.store.schema import FINISHED_SQL

_PAGE_ROWS: Final = 1000


class JobNotFound(LookupError):
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id}")


class JobQueries(Database):
    """The reads of ``Store``; every one works on a read-only store too."""

    def _select(self, where: str = "", params: Sequence[object] = (), tail: str = "") -> list[Job]:
        with self._translate():
            rows = self._conn.execute(f"{SELECT} {where} {tail}", params).fetchall()
        return [job_from_row(row, self.path) for row in rows]

    def _first(self, where: str, params: Sequence[object], tail: str = "") -> Job | None:
        found = self._select(where, params, tail + " LIMIT 1")
        return found[0] if found else None

    def account_pause(self) -> AccountPause | None:
        """The pause the account's refusals put on submissions, if one is in force."""
        with self._translate():
            row = self._conn.execute(
                "SELECT reason, http_status, since, probe_at FROM account_pause WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        reason, http_status, since, probe_at = row
        return AccountPause(
            reason=str(reason),
            http_status=None if http_status is None else int(http_status),
            since=float(since),
            probe_at=float(probe_at),
        )

    def get(self, job_id: int) -> Job:
        job = self._first("WHERE id = ?", (job_id,))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def active_job_for(self, path: Path) -> Job | None:
        return self._first(f"WHERE path = ? AND state NOT IN {FINISHED_SQL}", (os.fsencode(path),))

    def find_by_task_id(self, task_id: str) -> Job | None:
        return self._first("WHERE task_id = ?", (task_id,), "ORDER BY id DESC")

    def due(
        self, states: Collection[JobState], *, now: float, limit: int, inbox: str | None = None
    ) -> list[Job]:
        """Jobs in ``states`` whose time has come, longest-due first.

        A job with no ``next_attempt_at`` has been due since its last update, so it queues
        behind a retry that fell due earlier: a burst of new files cannot starve retries.
        """
        if isinstance(states, str):
            raise TypeError("pass a collection of states, not a single state")
        # Two index range scans per state, each stopping at ``limit``, merged here: one query
        # ordering by coalesce() would sort every row of the state on every tick.
        where = "WHERE state = ?" + ("" if inbox is None else " AND inbox = ?")
        candidates: list[Job] = []
        for state in set(states):
            params = [JobState(state).value] + ([] if inbox is None else [inbox])
            candidates += self._select(
                f"{where} AND next_attempt_at IS NULL",
                [*params, limit],
                "ORDER BY updated_at, id LIMIT ?",
            )
            candidates += self._select(
                f"{where} AND next_attempt_at <= ?",
                [*params, now, limit],
                "ORDER BY next_attempt_at, id LIMIT ?",
            )
        candidates.sort(key=_due_order)
        return candidates[:limit]

    def jobs(
        self,
        states: Collection[JobState] | None = None,
        *,
        inbox: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs in id order, optionally only some states or one inbox."""
        where, params = _filter(states, inbox)
        return self._select(where, [*params, -1 if limit is None else limit], "ORDER BY id LIMIT ?")

    def iter_jobs(
        self, states: Collection[JobState] | None = None, *, inbox: str | None = None
    ) -> Iterator[Job]:
        """Stream jobs in id order, a page per query, without holding a read snapshot open.

        Not a snapshot: a row written between pages is seen as it is when its page is read.
        """
        where, params = _filter(states, inbox)
        after = -1
        while True:
            page = self._select(
                f"{where} AND id > ?", [*params, after, _PAGE_ROWS], "ORDER BY id LIMIT ?"
            )
            yield from page
            if len(page) < _PAGE_ROWS:
                return
            after = page[-1].id

    def count_by_state(
        self, *, inbox: str | None = None, under: Path | None = None
    ) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero if none)."""
        where, params = _filter(None, inbox, under)
        with self._translate():
            rows = self._conn.execute(
                f"SELECT state, count(*) FROM jobs {where} GROUP BY state", params
            ).fetchall()
        counts = dict.fromkeys(JobState, 0)
        for state, count in rows:
            counts[decode(JobState, state, self.path)] = count
        return counts

    def count_in_flight(self) -> int:
        """Jobs that hold (or may hold) a task at the service: submitting plus submitted."""
        with self._translate():
            row = self._conn.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('submitting', 'submitted')"
            ).fetchone()
        return int(row[0])

    def oldest_waiting(self, *, inbox: str | None = None, under: Path | None = None) -> Job | None:
        """The active job first seen longest ago."""
        where, params = _filter(None, inbox, under)
        return self._first(
            f"{where} AND state NOT IN {FINISHED_SQL}", params, "ORDER BY first_seen_at, id"
        )

    def recent_failures(
        self, *, inbox: str | None = None, limit: int, under: Path | None = None
    ) -> list[Job]:
        where, params = _filter([JobState.FAILED], inbox, under)
        return self._select(where, [*params, limit], "ORDER BY finished_at DESC, id DESC LIMIT ?")

    def history(self, path: Path) -> list[Job]:
        """Every job ever recorded for ``path``, newest first."""
        return self._select("WHERE path = ?", (os.fsencode(path),), "ORDER BY id DESC")

    def inboxes(self) -> list[str]:
        with self._translate():
            rows = self._conn.execute("SELECT DISTINCT inbox FROM jobs ORDER BY inbox").fetchall()
        return [row[0] for row in rows]

    def results_for(self, job_id: int) -> tuple[ResultFile, ...] | None:
        """The saved results of a job; None if none were saved (empty if an empty set was)."""
        with self._translate():
            row = self._conn.execute(
                "SELECT result_count FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if row[0] is None:
                return None
            rows = self._conn.execute(
                "SELECT type, data FROM results WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
        try:
            return tuple(ResultFile(type=kind, data=zlib.decompress(data)) for kind, data in rows)
        except zlib.error as exc:
            raise StateStoreError(f"state store {self.path}: job {job_id}: {exc}") from exc

    def find_done_results(
        self, *, sha256: str, profile_hash: str, under: Path
    ) -> tuple[Job, tuple[ResultFile, ...]] | None:
        """The most recent done job for this content and profile that has results, with them.

        Only a job whose file was in the folder ``under`` (the inbox's path) counts: a state
        file shared by two configs must not hand one setup's results to another's folder.
        """
        where, params = _filter(None, None, under)
        job = self._first(
            f"{where} AND state = 'done' AND sha256 = ? AND profile_hash = ? "
            "AND result_count IS NOT NULL",
            (*params, sha256, profile_hash),
            "ORDER BY finished_at DESC, id DESC",
        )
        if job is None:
            return None
        results = self.results_for(job.id)
        assert results is not None  # the query required a saved result set
        return job, results


def _due_order(job: Job) -> tuple[float, int]:
    """When a job fell due: its scheduled time, or for an unscheduled one, its last update."""
    due_at = job.updated_at if job.next_attempt_at is None else job.next_attempt_at
    return due_at, job.id


def _filter(
    states: Collection[JobState] | None, inbox: str | None, under: Path | None = None
) -> tuple[str, list[object]]:
    """A WHERE clause (always present, so callers can append ``AND ...``) and its parameters.

    ``under``: only rows whose file lies in that folder. Names alone are not enough: two
    configs sharing one state file may both call an inbox ``scans``.
    """
    if isinstance(states, str):
        raise TypeError("pass a collection of states, not a single state")
    clauses, params = ["1"], list[object]()
    if states is not None:
        values = [JobState(state).value for state in states]
        clauses.append(f"state IN ({', '.join('?' * len(values))})")
        params.extend(values)
    if inbox is not None:
        clauses.append("inbox = ?")
        params.append(inbox)
    if under is not None:
        prefix = os.fsencode(under).rstrip(b"/") + b"/"
        clauses.append("substr(path, 1, ?) = ?")  # bytes, as paths are stored
        params.extend([len(prefix), prefix])
    return "WHERE " + " AND ".join(clauses), params
