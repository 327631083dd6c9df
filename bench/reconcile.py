"""Start-up time with a large state store and a large inbox: process start to ``READY=1``.

Before ``READY=1`` the daemon reconciles every active row with the folders and scans every
inbox (``Service.start``). Two states of the world are measured, each against a reference
start with an empty store and an empty inbox (the interpreter, the imports, the store's
migration, the watcher):

- ``done``: ``rows`` finished rows and the same files still in the inbox (``on_success:
  keep``, the default), the state of a long-running install after a restart: the scan must
  recognise every file as already done;
- ``queued``: ``rows`` rows waiting to be submitted and their files, a backlog interrupted by
  the restart: the reconciliation must check every row against its file.

The rows are written directly with ``ocrwatch.store.Store`` in one transaction, with the
files' real identities, so the daemon sees exactly what it would have written itself.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Literal

from bench import images, procstat
from bench.daemon import ClientProcess, DaemonSettings, daemon_command, write_config
from bench.server import REPO_ROOT, ServerProcess
from bench.stats import rounded

Variant = Literal["done", "queued"]
_READY_TIMEOUT_SECONDS = 600.0


def run_reconcile(
    *, rows: int, variant: Variant, work: Path, pool: Path, settings: DaemonSettings
) -> dict[str, Any]:
    """Build the store and inbox in ``work``, then time an empty start and a full start."""
    with ServerProcess(slots=16, processing_seconds=0.0, log_path=work / "server.log") as server:
        empty = _timed_start(work / "empty", server.base_url, settings)
        root = work / "full"
        config_path = write_config(root, server.base_url, settings)
        built_at = time.monotonic()
        files_seconds = _make_files(root / "inbox", rows, pool)
        store_seconds = _make_rows(config_path, variant)
        build_seconds = time.monotonic() - built_at
        full = _timed_start(root, server.base_url, settings, config_path=config_path)
    return {
        "name": f"reconcile-{variant}",
        "rows": rows,
        "files": rows,
        "variant": variant,
        "build_seconds": rounded(build_seconds, 1),
        "build_files_seconds": rounded(files_seconds, 1),
        "build_rows_seconds": rounded(store_seconds, 1),
        "empty_start": empty,
        "full_start": full,
        "reconcile_seconds": rounded(full["ready_seconds"] - empty["ready_seconds"]),
    }


def _timed_start(
    root: Path, base_url: str, settings: DaemonSettings, *, config_path: Path | None = None
) -> dict[str, Any]:
    config_path = config_path or write_config(root, base_url, settings)
    load_before = procstat.load_average()
    with ClientProcess(
        daemon_command(config_path, log_level=settings.log_level),
        log_path=root / "client.log",
        workdir=root,
        cwd=REPO_ROOT,
    ) as client:
        ready_seconds = client.wait_ready(timeout_seconds=_READY_TIMEOUT_SECONDS)
        cpu = procstat.cpu_seconds(client.pid)
        memory = procstat.memory_kib(client.pid) or (0, 0)
        client.terminate()
        reconciled = client.events(["reconciled"])
    return {
        "ready_seconds": rounded(ready_seconds),
        "cpu_seconds_to_ready": rounded(cpu),
        "rss_mib_at_ready": rounded(memory[0] / 1024, 1),
        "peak_rss_mib_at_ready": rounded(memory[1] / 1024, 1),
        "reconciled": {
            k: v
            for k, v in (reconciled[0] if reconciled else {}).items()
            if k not in ("event", "level", "timestamp", "logger")
        },
        "load_before": load_before,
        "load_after": procstat.load_average(),
    }


def _make_files(inbox: Path, count: int, pool: Path) -> float:
    """``count`` small PNG files in ``inbox`` (the same few bytes: the scan never reads them)."""
    started = time.monotonic()
    data = images.ensure_pool(pool, 1)[0].read_bytes()
    inbox.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        fd = os.open(inbox / f"kept-{index:06d}.png", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return time.monotonic() - started


def _make_rows(config_path: Path, variant: Variant) -> float:
    """One row per inbox file, as the daemon would have left it; returns the seconds taken."""
    from ocrwatch.config import load_config
    from ocrwatch.model import Fingerprint, JobState, Mode
    from ocrwatch.store import Store

    started = time.monotonic()
    config = load_config(config_path, environ={})
    inbox = config.inboxes[0]
    now = time.time() - 3600.0
    state = JobState.DONE if variant == "done" else JobState.QUEUED
    with Store.open(config.state_path) as store, store.batch():
        for entry in sorted(os.scandir(inbox.path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            digest = hashlib.sha256(entry.name.encode()).hexdigest()
            fingerprint = Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest)
            job = store.add_job(
                inbox=inbox.name,
                path=inbox.path / entry.name,
                profile_hash=inbox.profile_hash,
                state=state,
                fingerprint=fingerprint,
                now=now,
            )
            if state is JobState.QUEUED:
                store.update(job.id, now=now, mode=Mode.IMAGE)
    return time.monotonic() - started
