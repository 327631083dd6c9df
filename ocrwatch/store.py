"""The durable job table: the only module that speaks SQL.

Each file ocrwatch takes on is one row of ``jobs``; its ``JobState`` tells a restart exactly what
to do next, so the daemon commits a state *before* the side effect it announces (SUBMITTING before
the POST, the task id right after it). The ``results`` table keeps the fetched results of a job,
zlib-compressed, both to rewrite sidecars after a crash and as the duplicate cache: a later file
with the same sha256 and profile hash reuses them instead of paying for another task.

Invariants and hazards:

- Durability: WAL with ``synchronous=FULL``, so every commit has fsynced the WAL before it
  returns. ``NORMAL`` survives a process crash but may lose the last commits on power loss, and
  that is exactly the window (SUBMITTING committed, POST returned) that would double-bill or
  forget a file. The price is one fsync per commit; bulk work goes through ``batch()``.
- At most one *active* job per path: a partial unique index on ``path`` for states other than
  done and failed, so duplicate watcher events can never create two jobs (``DuplicateJob``).
- One writer: a writable store holds an exclusive ``flock`` on ``<db>.lock`` for its lifetime; a
  second daemon on the same file is refused rather than allowed to submit the same files. Readers
  (``readonly=True``, e.g. ``ocrwatch status``) take no lock; WAL lets them read committed rows
  while the daemon writes.
- Every write method is one transaction (``BEGIN IMMEDIATE``). Inside ``batch()`` it joins the
  batch's transaction, in a savepoint when it takes more than one statement, so each write stays
  all-or-nothing and the batch commits or rolls back as a whole.
- Paths are stored as the exact bytes of the name (``os.fsencode``): undecodable and non-NFC names
  round-trip unchanged and compare bytewise, as the kernel compares them. Device and inode numbers
  can exceed SQLite's signed 64 bits (NFS, overlayfs), so they are stored as two's-complement.
- No result-size cap: a result set is what the API returned for one bounded upload; SQLite's own
  1 GB value limit is the ceiling, and ``prune`` removes results together with their rows.
- One control thread owns the store (sqlite3's ``check_same_thread`` stays on). Any
  ``sqlite3.Error`` becomes ``StateStoreError`` naming the file, never the row data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import sqlite3
import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypedDict, TypeVar, Unpack

from ocrwatch.errors import StateStoreError
from ocrwatch.model import ErrorClass, Fingerprint, Job, JobState, Mode, ResultFile

APPLICATION_ID: Final = 0x4F435257  # "OCRW" in the file header: refuse other apps' databases
BUSY_TIMEOUT_SECONDS: Final = 5.0
_PAGE_ROWS: Final = 1000
_E = TypeVar("_E", JobState, Mode, ErrorClass)
_FINISHED_SQL: Final = "('done', 'failed')"

# Migration N (1-based) upgrades user_version N-1 to N in one transaction. Released entries are
# never edited; a schema change appends a new entry.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            inbox TEXT NOT NULL,
            path BLOB NOT NULL,
            state TEXT NOT NULL,
            profile_hash TEXT NOT NULL,
            device INTEGER, inode INTEGER, size INTEGER, mtime_ns INTEGER, sha256 TEXT,
            mode TEXT,
            task_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            last_error TEXT,
            error_class TEXT,
            http_status INTEGER,
            first_seen_at REAL NOT NULL,
            submitted_at REAL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            result_count INTEGER
        )""",
        f"CREATE UNIQUE INDEX jobs_active_path ON jobs (path) WHERE state NOT IN {_FINISHED_SQL}",
        "CREATE INDEX jobs_path ON jobs (path)",
        # due(): per state, the undated rows by updated_at, then the dated ones by their time.
        "CREATE INDEX jobs_due ON jobs (state, next_attempt_at, updated_at)",
        f"CREATE INDEX jobs_waiting ON jobs (first_seen_at) WHERE state NOT IN {_FINISHED_SQL}",
        "CREATE INDEX jobs_done_content ON jobs (sha256, profile_hash) WHERE state = 'done'",
        "CREATE INDEX jobs_inbox ON jobs (inbox, state)",
        "CREATE INDEX jobs_task_id ON jobs (task_id) WHERE task_id IS NOT NULL",
        """CREATE TABLE results (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (job_id, seq)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = (
    "id", "inbox", "path", "state", "profile_hash", "device", "inode", "size", "mtime_ns",
    "sha256", "mode", "task_id", "attempts", "next_attempt_at", "last_error", "error_class",
    "http_status", "first_seen_at", "submitted_at", "updated_at",
)  # fmt: skip
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
_INSERT: Final = (
    f"INSERT INTO jobs ({', '.join(_COLUMNS[1:])}, finished_at) "
    f"VALUES ({', '.join(':' + name for name in _COLUMNS[1:])}, :finished_at)"
)


# finished_at is the store's own column: stamped on entering done or failed, kept while the job
# stays finished, cleared if it becomes active again.
_UPDATE: Final = (
    f"UPDATE jobs SET {', '.join(f'{name} = :{name}' for name in _COLUMNS[1:])}, finished_at ="
    " CASE WHEN NOT :finished THEN NULL"
    f" WHEN state IN {_FINISHED_SQL} AND finished_at IS NOT NULL THEN finished_at"
    " ELSE :now END WHERE id = :id"
)


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


class JobNotFound(LookupError):
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id}")


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


class Store:
    """The open state database. Build it with ``Store.open``; use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self._depth = 0  # how many _write blocks are open; more than one means savepoints
        self.readonly = lock_fd is None

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        """Open (and unless ``readonly``, create and migrate) the state database at ``path``."""
        path = Path(path)
        lock_fd: int | None = None
        try:
            if readonly:
                if not path.is_file():
                    raise StateStoreError(f"state store {path} does not exist")
                target, uri = path.resolve().as_uri() + "?mode=ro", True
            else:
                _make_private_dirs(path.parent)
                lock_fd = _take_writer_lock(path)
                # sqlite gives the -wal and -shm files the mode of the database file itself.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
                target, uri = str(path), False
            conn = sqlite3.connect(
                target, uri=uri, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
        except OSError as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StateStoreError(f"state store {path}: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StateStoreError(f"state store {path}: {exc}") from exc
        store = cls(path, conn, lock_fd=lock_fd)
        try:
            store._prepare()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare(self) -> None:
        conn = self._conn
        with self._translate():
            # The first read of the header: a file that is not SQLite fails here.
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("PRAGMA foreign_keys = ON")
        if application_id not in (0, APPLICATION_ID):
            raise StateStoreError(f"{self.path} is an SQLite file of another application")
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"state store {self.path} has schema version {version}, newer than this ocrwatch "
                f"understands ({SCHEMA_VERSION}); upgrade ocrwatch or use another state path"
            )
        if self.readonly:
            if version < SCHEMA_VERSION:
                raise StateStoreError(
                    f"state store {self.path} has schema version {version}; the daemon upgrades "
                    f"it to {SCHEMA_VERSION} when it next starts"
                )
            return
        with self._translate():
            journal_mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
        if journal_mode != "wal":
            raise StateStoreError(
                f"state store {self.path} cannot use WAL (journal_mode={journal_mode}); "
                "put it on a local filesystem"
            )
        self._migrate()

    def _migrate(self) -> None:
        while True:
            with self._write() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    return
                if (
                    version == 0
                    and conn.execute(
                        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                    ).fetchone()[0]
                ):
                    raise StateStoreError(
                        f"{self.path} has tables but no schema version: not an ocrwatch state store"
                    )
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateStoreError(f"state store {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, *, single_statement: bool = False) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write: a transaction, or a savepoint inside ``batch()``.

        Inside a batch, a write of one statement needs no savepoint: SQLite undoes a failed
        statement by itself and leaves the transaction open.
        """
        if self.readonly:
            raise StateStoreError(f"state store {self.path} was opened read-only")
        conn = self._conn
        nested = self._depth > 0
        if nested and not conn.in_transaction:
            # SQLite ends a transaction by itself after some errors (disk full, I/O); going on
            # in autocommit would break the batch's all-or-nothing promise.
            raise StateStoreError(f"state store {self.path}: the batch was already rolled back")
        if nested and single_statement:
            with self._translate():
                yield conn
            return
        with self._translate():
            conn.execute("SAVEPOINT job_write" if nested else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield conn
                conn.execute("RELEASE job_write" if nested else "COMMIT")
            except BaseException:
                if conn.in_transaction and nested:
                    conn.execute("ROLLBACK TO job_write")
                    conn.execute("RELEASE job_write")
                elif conn.in_transaction:  # else SQLite already rolled everything back
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._depth -= 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[Self]:
        """Run several writes in one transaction; everything is rolled back if the block raises."""
        with self._write():
            yield self

    # -- writes ------------------------------------------------------------------------------

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
        _require_absolute(path)
        state = JobState(state)
        with self._write(single_statement=True) as conn:
            try:
                cursor = conn.execute(
                    _INSERT,
                    {
                        "inbox": inbox,
                        "path": os.fsencode(path),
                        "state": state.value,
                        "profile_hash": profile_hash,
                        **_fingerprint_values(fingerprint),
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
            _require_absolute(changes["path"])
        with self._write(single_statement=True) as conn:
            current = self.get(job_id)
            if expect_state is not None and current.state != expect_state:
                raise StaleJob(current, expected=expect_state)
            if "state" in changes:
                changes["state"] = JobState(changes["state"])
            job = dataclasses.replace(current, **changes, updated_at=now)
            values = _job_values(job)
            values["now"] = now
            values["finished"] = not job.state.is_active
            try:
                conn.execute(_UPDATE, values)
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
                f"""DELETE FROM jobs WHERE state IN {_FINISHED_SQL} AND finished_at < ?
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

    # -- reads -------------------------------------------------------------------------------

    def _select(self, where: str = "", params: Sequence[object] = (), tail: str = "") -> list[Job]:
        with self._translate():
            rows = self._conn.execute(f"{_SELECT} {where} {tail}", params).fetchall()
        return [self._job_from_row(row) for row in rows]

    def _first(self, where: str, params: Sequence[object], tail: str = "") -> Job | None:
        found = self._select(where, params, tail + " LIMIT 1")
        return found[0] if found else None

    def get(self, job_id: int) -> Job:
        job = self._first("WHERE id = ?", (job_id,))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def active_job_for(self, path: Path) -> Job | None:
        return self._first(f"WHERE path = ? AND state NOT IN {_FINISHED_SQL}", (os.fsencode(path),))

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

    def count_by_state(self, *, inbox: str | None = None) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero if none)."""
        where, params = _filter(None, inbox)
        with self._translate():
            rows = self._conn.execute(
                f"SELECT state, count(*) FROM jobs {where} GROUP BY state", params
            ).fetchall()
        counts = dict.fromkeys(JobState, 0)
        for state, count in rows:
            counts[self._decode(JobState, state)] = count
        return counts

    def count_in_flight(self) -> int:
        """Jobs that hold (or may hold) a task at the service: submitting plus submitted."""
        with self._translate():
            row = self._conn.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('submitting', 'submitted')"
            ).fetchone()
        return int(row[0])

    def oldest_waiting(self, *, inbox: str | None = None) -> Job | None:
        """The active job first seen longest ago."""
        where, params = _filter(None, inbox)
        return self._first(
            f"{where} AND state NOT IN {_FINISHED_SQL}", params, "ORDER BY first_seen_at, id"
        )

    def recent_failures(self, *, inbox: str | None = None, limit: int) -> list[Job]:
        where, params = _filter([JobState.FAILED], inbox)
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
        self, *, sha256: str, profile_hash: str
    ) -> tuple[Job, tuple[ResultFile, ...]] | None:
        """The most recent done job for this content and profile that has results, with them."""
        job = self._first(
            "WHERE state = 'done' AND sha256 = ? AND profile_hash = ? AND result_count IS NOT NULL",
            (sha256, profile_hash),
            "ORDER BY finished_at DESC, id DESC",
        )
        if job is None:
            return None
        results = self.results_for(job.id)
        assert results is not None  # the query required a saved result set
        return job, results

    # -- rows <-> values ----------------------------------------------------------------------

    def _decode(self, kind: type[_E], value: str) -> _E:
        try:
            return kind(value)
        except ValueError:
            raise StateStoreError(
                f"state store {self.path} holds an unknown {kind.__name__} {value!r}"
            ) from None

    def _job_from_row(self, row: tuple[Any, ...]) -> Job:
        # Positional, in _COLUMNS order: a listing of 100,000 rows builds 100,000 of these.
        (
            job_id, inbox, path, state, profile_hash, device, inode, size, mtime_ns, sha256,
            mode, task_id, attempts, next_attempt_at, last_error, error_class, http_status,
            first_seen_at, submitted_at, updated_at,
        ) = row  # fmt: skip
        fingerprint = None
        if device is not None:
            fingerprint = Fingerprint(
                device=_from_i64(device),
                inode=_from_i64(inode),
                size=size,
                mtime_ns=mtime_ns,
                sha256=sha256,
            )
        return Job(
            id=job_id,
            inbox=inbox,
            path=Path(os.fsdecode(path)),
            state=self._decode(JobState, state),
            profile_hash=profile_hash,
            fingerprint=fingerprint,
            mode=None if mode is None else self._decode(Mode, mode),
            task_id=task_id,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error,
            error_class=None if error_class is None else self._decode(ErrorClass, error_class),
            http_status=http_status,
            first_seen_at=first_seen_at,
            submitted_at=submitted_at,
            updated_at=updated_at,
        )


def _job_values(job: Job) -> dict[str, object]:
    return {
        "id": job.id,
        "inbox": job.inbox,
        "path": os.fsencode(job.path),
        "state": job.state.value,
        "profile_hash": job.profile_hash,
        **_fingerprint_values(job.fingerprint),
        "mode": None if job.mode is None else Mode(job.mode).value,
        "task_id": job.task_id,
        "attempts": job.attempts,
        "next_attempt_at": job.next_attempt_at,
        "last_error": job.last_error,
        "error_class": None if job.error_class is None else ErrorClass(job.error_class).value,
        "http_status": job.http_status,
        "first_seen_at": job.first_seen_at,
        "submitted_at": job.submitted_at,
        "updated_at": job.updated_at,
    }


def _due_order(job: Job) -> tuple[float, int]:
    """When a job fell due: its scheduled time, or for an unscheduled one, its last update."""
    due_at = job.updated_at if job.next_attempt_at is None else job.next_attempt_at
    return due_at, job.id


def _fingerprint_values(fingerprint: Fingerprint | None) -> dict[str, object]:
    if fingerprint is None:
        return dict.fromkeys(("device", "inode", "size", "mtime_ns", "sha256"))
    return {
        "device": _to_i64(fingerprint.device),
        "inode": _to_i64(fingerprint.inode),
        "size": fingerprint.size,
        "mtime_ns": fingerprint.mtime_ns,
        "sha256": fingerprint.sha256,
    }


def _filter(states: Collection[JobState] | None, inbox: str | None) -> tuple[str, list[object]]:
    """A WHERE clause (always present, so callers can append ``AND ...``) and its parameters."""
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
    return "WHERE " + " AND ".join(clauses), params


def _to_i64(number: int) -> int:
    return number - (1 << 64) if number >= 1 << 63 else number


def _from_i64(number: int) -> int:
    return number + (1 << 64) if number < 0 else number


def _require_absolute(path: Path) -> None:
    if not Path(path).is_absolute():
        raise ValueError(f"job paths must be absolute: {path}")


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories owner-only; existing ones are the operator's to set."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def _take_writer_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateStoreError(
            f"state store {path} is in use by another ocrwatch process (lock {lock_path})"
        ) from None
    return fd
