"""The durable job table: the only package that speaks SQL.

Each file ocrwatch takes on is one row of ``jobs``; its ``JobState`` tells a restart exactly what
to do next, so the daemon commits a state *before* the side effect it announces (SUBMITTING before
the POST, the task id right after it). The ``results`` table keeps the fetched results of a job,
zlib-compressed, both to rewrite sidecars after a crash and as the duplicate cache: a later file
with the same sha256 and profile hash reuses them instead of paying for another task.

``schema`` holds the DDL and its migrations; ``rows`` converts rows to ``Job`` values and back;
``database`` owns the connection, the writer lock and the transactions; ``queries`` and ``store``
add the reads and the writes, and ``Store`` is the class callers open.
"""

from __future__ import annotations

from ocrwatch.store.database import BUSY_TIMEOUT_SECONDS, writer_running
from ocrwatch.store.queries import JobNotFound
from ocrwatch.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from ocrwatch.store.store import DuplicateJob, JobChanges, StaleJob, Store

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_SECONDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DuplicateJob",
    "JobChanges",
    "JobNotFound",
    "StaleJob",
    "Store",
    "writer_running",
]
