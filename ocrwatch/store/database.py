"""The open SQLite state file: its writer lock, pragmas, migrations and transactions.

Invariants and hazards:

- Durability: WAL with ``synchronous=FULL``, so every commit has fsynced the WAL before it
  returns. ``NORMAL`` survives a process crash but may lose the last commits on power loss, and
  that is exactly the window (SUBMITTING committed, POST returned) that would double-bill or
  forget a file. The price is one fsync per commit; bulk work goes through ``batch()``.
- One writer: a writable store holds an exclusive ``flock`` on ``<db>.lock`` for its lifetime; a
  second daemon on the same file is refused rather than allowed to submit the same files. Readers
  (``readonly=True``, e.g. ``ocrwatch status``) take no lock; WAL lets them read committed rows
  while the daemon writes.
- Every write method is one transaction (``BEGIN IMMEDIATE``). Inside ``batch()`` it joins the
  batch's transaction, in a savepoint when it takes more than one statement, so each write stays
  all-or-nothing and the batch commits or rolls back as a whole.
- One control thread owns the store (sqlite3's ``check_same_thread`` stays on). Any
  ``sqlite3.Error`` becomes ``StateStoreError`` naming the file, never the row data.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from ocrwatch.errors import StateStoreError
from ocrwatch.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_SECONDS: Final = 5.0


class Database:
    """The connection and its transactions; ``Store`` adds the job reads and writes on top."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self._depth = 0  # how many _write blocks are open; more than one means savepoints
        self.readonly = lock_fd is None

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, holder: Path | None = None) -> Self:
        """Open (and unless ``readonly``, create and migrate) the state database at ``path``.

        ``holder`` (the config file) is written into the lock file, so a second writer is
        told which setup holds the store.
        """
        path = Path(path)
        lock_fd: int | None = None
        try:
            if readonly:
                if not path.is_file():
                    raise StateStoreError(f"state store {path} does not exist")
                target, uri = path.resolve().as_uri() + "?mode=ro", True
            else:
                _make_private_dirs(path.parent)
                lock_fd = _take_writer_lock(path, holder)
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


_LOCK_NOTE_MAX_BYTES = 4096


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories owner-only; existing ones are the operator's to set."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def _take_writer_lock(path: Path, holder: Path | None) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held_by = _lock_holder(fd)
        os.close(fd)
        raise StateStoreError(
            f"state store {path} is in use by another ocrwatch process (lock {lock_path}"
            f"{'; held by ' + held_by if held_by else ''}); to run a second setup beside it, "
            "give its config its own state file (state.path)"
        ) from None
    # Who holds it, for the next one refused: the lock is the flock, this is only a note.
    note = f"pid {os.getpid()}, config {holder if holder is not None else 'unknown'}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, note.encode("utf-8", "surrogateescape"), 0)
    return fd


def writer_running(path: Path) -> bool:
    """Whether a process (the daemon, ``once``) holds the writer lock of the state file ``path``.

    Asks the lock itself rather than a pid file, so a crashed daemon never looks alive: the
    kernel drops a flock with its holder. Takes a shared lock for an instant only; without a
    lock file, nothing has ever written the state file.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also releases the shared lock we may have taken
    return False


def _lock_holder(fd: int) -> str:
    try:
        return os.pread(fd, _LOCK_NOTE_MAX_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
