"""The state file's schema: its application id, and the migrations that build each version.

Invariants and hazards:

- ``PRAGMA user_version`` is the schema version; ``Database`` applies the missing migrations at
  open, each in its own transaction.
- ``PRAGMA application_id`` marks the file as ocrwatch's, so a database of another application
  is refused instead of migrated.
- At most one *active* job per path: a partial unique index on ``path`` for states other than
  done and failed, so duplicate watcher events can never create two jobs (``DuplicateJob``).
"""

from __future__ import annotations

from typing import Final

APPLICATION_ID: Final = 0x4F435257  # "OCRW" in the file header: refuse other apps' databases
FINISHED_SQL: Final = "('done', 'failed')"

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
        f"CREATE UNIQUE INDEX jobs_active_path ON jobs (path) WHERE state NOT IN {FINISHED_SQL}",
        "CREATE INDEX jobs_path ON jobs (path)",
        # due(): per state, the undated rows by updated_at, then the dated ones by their time.
        "CREATE INDEX jobs_due ON jobs (state, next_attempt_at, updated_at)",
        f"CREATE INDEX jobs_waiting ON jobs (first_seen_at) WHERE state NOT IN {FINISHED_SQL}",
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
    (
        # At most one row: submissions are paused while the account's plan or quota refuses
        # calls. Kept here so a restart stays paused and `ocrwatch status` can say so.
        """CREATE TABLE account_pause (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            reason TEXT NOT NULL,
            http_status INTEGER,
            since REAL NOT NULL,
            probe_at REAL NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
