"""Rows of ``jobs`` to ``Job`` values and back, with the SQL that names the columns in order.

Invariants and hazards:

- ``COLUMNS`` fixes the order of every ``SELECT``; ``job_from_row`` unpacks by position, so the
  two change together.
- Paths are stored as the exact bytes of the name (``os.fsencode``): undecodable and non-NFC names
  round-trip unchanged and compare bytewise, as the kernel compares them. Device and inode numbers
  can exceed SQLite's signed 64 bits (NFS, overlayfs), so they are stored as two's-complement.
- A value the enums do not know (a newer ocrwatch wrote it, or the file was edited) becomes
  ``StateStoreError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, TypeVar

from ocrwatch.errors import StateStoreError
from ocrwatch.model import ErrorClass, Fingerprint, Job, JobState, Mode
from ocrwatch.store.schema import FINISHED_SQL

_E = TypeVar("_E", JobState, Mode, ErrorClass)

COLUMNS: Final = (
    "id", "inbox", "path", "state", "profile_hash", "device", "inode", "size", "mtime_ns",
    "sha256", "mode", "task_id", "attempts", "next_attempt_at", "last_error", "error_class",
    "http_status", "first_seen_at", "submitted_at", "updated_at",
)  # fmt: skip
SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM jobs"
INSERT: Final = (
    f"INSERT INTO jobs ({', '.join(COLUMNS[1:])}, finished_at) "
    f"VALUES ({', '.join(':' + name for name in COLUMNS[1:])}, :finished_at)"
)


# finished_at is the store's own column: stamped on entering done or failed, kept while the job
# stays finished, cleared if it becomes active again.
UPDATE: Final = (
    f"UPDATE jobs SET {', '.join(f'{name} = :{name}' for name in COLUMNS[1:])}, finished_at ="
    " CASE WHEN NOT :finished THEN NULL"
    f" WHEN state IN {FINISHED_SQL} AND finished_at IS NOT NULL THEN finished_at"
    " ELSE :now END WHERE id = :id"
)


def decode(kind: type[_E], value: str, store_path: Path) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise StateStoreError(
            f"state store {store_path} holds an unknown {kind.__name__} {value!r}"
        ) from None


def job_from_row(row: tuple[Any, ...], store_path: Path) -> Job:
    # Positional, in COLUMNS order: a listing of 100,000 rows builds 100,000 of these.
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
        state=decode(JobState, state, store_path),
        profile_hash=profile_hash,
        fingerprint=fingerprint,
        mode=None if mode is None else decode(Mode, mode, store_path),
        task_id=task_id,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        last_error=last_error,
        error_class=None if error_class is None else decode(ErrorClass, error_class, store_path),
        http_status=http_status,
        first_seen_at=first_seen_at,
        submitted_at=submitted_at,
        updated_at=updated_at,
    )


def job_values(job: Job) -> dict[str, object]:
    return {
        "id": job.id,
        "inbox": job.inbox,
        "path": os.fsencode(job.path),
        "state": job.state.value,
        "profile_hash": job.profile_hash,
        **fingerprint_values(job.fingerprint),
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


def fingerprint_values(fingerprint: Fingerprint | None) -> dict[str, object]:
    if fingerprint is None:
        return dict.fromkeys(("device", "inode", "size", "mtime_ns", "sha256"))
    return {
        "device": _to_i64(fingerprint.device),
        "inode": _to_i64(fingerprint.inode),
        "size": fingerprint.size,
        "mtime_ns": fingerprint.mtime_ns,
        "sha256": fingerprint.sha256,
    }


def require_absolute(path: Path) -> None:
    if not Path(path).is_absolute():
        raise ValueError(f"job paths must be absolute: {path}")


def _to_i64(number: int) -> int:
    return number - (1 << 64) if number >= 1 << 63 else number


def _from_i64(number: int) -> int:
    return number + (1 << 64) if number < 0 else number
