"""The state store against real SQLite files: round-trips, invariants, durability, migrations."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch.errors import StateStoreError
from ocrwatch.model import ErrorClass, Fingerprint, Job, JobState, Mode, ResultFile
from ocrwatch.store import (
    SCHEMA_VERSION,
    DuplicateJob,
    JobNotFound,
    StaleJob,
    Store,
)

REPO = Path(__file__).resolve().parent.parent
INBOX = "scans"
PROFILE = "profile-a"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ocrwatch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path) as opened:
        yield opened


IN = Path("/in")


def add(store: Store, name: str, *, now: float = 100.0, **kwargs: object) -> Job:
    values: dict[str, object] = {"inbox": INBOX, "profile_hash": PROFILE, **kwargs}
    return store.add_job(path=Path("/in") / name, now=now, **values)  # type: ignore[arg-type]


def finish(store: Store, job: Job, *, sha256: str, now: float, results: bool = True) -> Job:
    """Take a job to DONE with a content hash and (optionally) a saved result set."""
    done = store.update(
        job.id,
        now=now,
        state=JobState.DONE,
        fingerprint=Fingerprint(device=1, inode=job.id, size=10, mtime_ns=5, sha256=sha256),
    )
    if results:
        store.save_results(job.id, [ResultFile(type="Text", data=f"text {job.id}".encode())])
    return done


# -- round trips --------------------------------------------------------------------------------


UNDECODABLE = Path(os.fsdecode(b"/in/caf\xe9.png"))
NFD = Path("/in/" + unicodedata.normalize("NFD", "café-Ünïcode.png"))


@pytest.mark.parametrize("path", [UNDECODABLE, NFD, Path("/in/plain name.pdf")], ids=str)
def test_every_job_field_round_trips(store: Store, db_path: Path, path: Path) -> None:
    added = store.add_job(inbox=INBOX, path=path, profile_hash=PROFILE, now=10.5)
    fingerprint = Fingerprint(
        device=(1 << 64) - 3,  # NFS and overlayfs numbers beyond SQLite's signed 64 bits
        inode=(1 << 63) + 7,
        size=123_456_789_012,
        mtime_ns=-1_500_000_000,  # before 1970
        sha256="ab" * 32,
    )
    updated = store.update(
        added.id,
        now=20.25,
        state=JobState.SUBMITTED,
        fingerprint=fingerprint,
        mode=Mode.PDF,
        task_id="6d4c6a1e-0000-4000-8000-000000000001",
        attempts=3,
        next_attempt_at=30.125,
        last_error="HTTP 503 from the service",
        error_class=ErrorClass.ATTEMPTS_EXHAUSTED,
        http_status=503,
        submitted_at=19.0,
    )
    expected = Job(
        id=added.id,
        inbox=INBOX,
        path=path,
        state=JobState.SUBMITTED,
        profile_hash=PROFILE,
        fingerprint=fingerprint,
        mode=Mode.PDF,
        task_id="6d4c6a1e-0000-4000-8000-000000000001",
        attempts=3,
        next_attempt_at=30.125,
        last_error="HTTP 503 from the service",
        error_class=ErrorClass.ATTEMPTS_EXHAUSTED,
        http_status=503,
        first_seen_at=10.5,
        submitted_at=19.0,
        updated_at=20.25,
    )
    assert updated == expected
    store.close()
    with Store.open(db_path, readonly=True) as reopened:
        assert reopened.get(added.id) == expected
        assert os.fsencode(reopened.get(added.id).path) == os.fsencode(path)
        assert reopened.active_job_for(path) == expected


def test_added_job_equals_the_stored_row_and_fields_can_be_cleared(store: Store) -> None:
    fingerprint = Fingerprint(device=1, inode=2, size=3, mtime_ns=4)
    added = add(store, "a.png", state=JobState.QUEUED, fingerprint=fingerprint)
    assert added == store.get(added.id)
    assert added.fingerprint == fingerprint and added.state is JobState.QUEUED
    store.update(added.id, now=101.0, task_id="t", mode=Mode.IMAGE, http_status=500)
    cleared = store.update(
        added.id, now=102.0, fingerprint=None, task_id=None, mode=None, http_status=None
    )
    assert cleared == store.get(added.id)
    assert (cleared.fingerprint, cleared.task_id, cleared.mode, cleared.http_status) == (None,) * 4


def test_update_refuses_unknown_fields_and_relative_paths(store: Store) -> None:
    job = add(store, "a.png")
    with pytest.raises(TypeError, match="first_seen_at"):
        store.update(job.id, now=1.0, first_seen_at=5.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="absolute"):
        store.update(job.id, now=1.0, path=Path("relative.png"))
    with pytest.raises(ValueError, match="absolute"):
        store.add_job(inbox=INBOX, path=Path("x.png"), profile_hash=PROFILE, now=1.0)
    assert store.get(job.id) == job


def test_unknown_ids_raise_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.get(42)
    with pytest.raises(JobNotFound):
        store.update(42, now=1.0, attempts=1)
    with pytest.raises(JobNotFound):
        store.save_results(42, [])
    with pytest.raises(JobNotFound):
        store.results_for(42)
    assert store.delete(42) is False


# -- one active job per path ----------------------------------------------------------------------


def test_a_path_has_at_most_one_active_job(store: Store) -> None:
    first = add(store, "a.png")
    with pytest.raises(DuplicateJob) as raised:
        add(store, "a.png", now=200.0)
    assert raised.value.existing == first
    assert store.jobs() == [first]

    store.update(first.id, now=300.0, state=JobState.DONE)
    second = add(store, "a.png", now=400.0)
    assert [job.id for job in store.history(Path("/in/a.png"))] == [second.id, first.id]
    assert store.active_job_for(Path("/in/a.png")) == second


def test_get_or_add_job_returns_the_active_job_or_creates_one(store: Store) -> None:
    created, is_new = store.get_or_add_job(
        inbox=INBOX, path=Path("/in/a.png"), profile_hash=PROFILE, now=1.0
    )
    again, again_new = store.get_or_add_job(
        inbox=INBOX, path=Path("/in/a.png"), profile_hash=PROFILE, now=2.0
    )
    assert (is_new, again_new) == (True, False)
    assert again == created
    assert len(store.jobs()) == 1


def test_updates_cannot_make_two_active_jobs_for_a_path(store: Store) -> None:
    old = add(store, "a.png")
    store.update(old.id, now=101.0, state=JobState.FAILED)
    current = add(store, "a.png", now=102.0)
    other = add(store, "b.png", now=103.0)

    with pytest.raises(DuplicateJob) as reactivated:
        store.update(old.id, now=104.0, state=JobState.QUEUED)
    assert reactivated.value.existing == current
    with pytest.raises(DuplicateJob):
        store.update(other.id, now=105.0, path=Path("/in/a.png"))
    assert store.get(old.id).state is JobState.FAILED
    assert store.get(other.id).path == Path("/in/b.png")


def test_expect_state_guards_against_stale_decisions(store: Store) -> None:
    job = add(store, "a.png", state=JobState.QUEUED)
    submitting = store.update(
        job.id, now=101.0, expect_state=JobState.QUEUED, state=JobState.SUBMITTING
    )
    with pytest.raises(StaleJob) as raised:
        store.update(job.id, now=102.0, expect_state=JobState.QUEUED, state=JobState.SUBMITTING)
    assert raised.value.current == submitting
    assert raised.value.expected is JobState.QUEUED
    assert store.get(job.id) == submitting


# -- queries --------------------------------------------------------------------------------------


def test_due_orders_by_time_due_and_filters(store: Store) -> None:
    queued = JobState.QUEUED
    retry_early = add(store, "retry-early.png", now=10.0, state=queued)
    store.update(retry_early.id, now=11.0, next_attempt_at=50.0)
    fresh = add(store, "fresh.png", now=60.0, state=queued)  # due since it was queued
    retry_late = add(store, "retry-late.png", now=10.0, state=queued)
    store.update(retry_late.id, now=12.0, next_attempt_at=70.0)
    future = add(store, "future.png", now=10.0, state=queued)
    store.update(future.id, now=13.0, next_attempt_at=1000.0)
    add(store, "settling.png", now=1.0)  # another state
    add(store, "elsewhere.png", now=1.0, state=queued, inbox="other")

    due = store.due([queued], now=100.0, limit=10, inbox=INBOX)
    assert [job.id for job in due] == [retry_early.id, fresh.id, retry_late.id]
    assert [job.id for job in store.due([queued], now=100.0, limit=2, inbox=INBOX)] == [
        retry_early.id,
        fresh.id,
    ]
    assert len(store.due([queued], now=100.0, limit=10)) == 4
    assert len(store.due([queued, JobState.SETTLING], now=100.0, limit=10)) == 5
    assert store.due([], now=100.0, limit=10) == []
    assert future.id in {job.id for job in store.due([queued], now=1000.0, limit=10)}
    with pytest.raises(TypeError):
        store.due(JobState.QUEUED, now=1.0, limit=1)  # type: ignore[arg-type]


def test_listing_counting_and_history(store: Store) -> None:
    a = add(store, "a.png", now=5.0)
    b = add(store, "b.png", now=3.0, inbox="other")
    c = add(store, "c.png", now=4.0, state=JobState.QUEUED)
    store.update(c.id, now=6.0, state=JobState.SUBMITTING)
    store.update(c.id, now=7.0, state=JobState.SUBMITTED, task_id="task-c")
    d = add(store, "d.png", now=1.0)
    store.update(d.id, now=8.0, state=JobState.FAILED, error_class=ErrorClass.REJECTED)
    e = add(store, "e.png", now=1.0, state=JobState.SUBMITTING)
    store.update(e.id, now=9.0, state=JobState.FAILED, error_class=ErrorClass.UNREADABLE)

    assert [job.id for job in store.jobs()] == [a.id, b.id, c.id, d.id, e.id]
    assert [job.id for job in store.jobs(limit=2)] == [a.id, b.id]
    assert [job.id for job in store.jobs([JobState.SETTLING], inbox=INBOX)] == [a.id]
    assert store.inboxes() == ["other", INBOX]

    counts = store.count_by_state()
    assert counts[JobState.SETTLING] == 2 and counts[JobState.FAILED] == 2
    assert counts[JobState.SUBMITTED] == 1 and counts[JobState.DONE] == 0
    assert set(counts) == set(JobState)
    assert store.count_by_state(inbox="other")[JobState.SETTLING] == 1
    assert store.count_in_flight() == 1

    oldest = store.oldest_waiting(inbox=INBOX)
    assert oldest is not None and oldest.id == c.id  # d and e are older but finished
    assert store.oldest_waiting(inbox="nowhere") is None
    assert [job.id for job in store.recent_failures(limit=5)] == [e.id, d.id]
    assert [job.id for job in store.recent_failures(inbox=INBOX, limit=1)] == [e.id]
    assert store.find_by_task_id("task-c") == store.get(c.id)
    assert store.find_by_task_id("unknown") is None


def test_iter_jobs_streams_every_row_once_across_pages(store: Store) -> None:
    with store.batch():
        for n in range(2_503):
            add(store, f"{n}.png", state=JobState.QUEUED if n % 2 else JobState.SETTLING)
    seen = []
    for job in store.iter_jobs():
        seen.append(job.id)
        if job.id % 500 == 0:  # writes between pages are allowed and do not repeat rows
            store.update(job.id, now=200.0, state=JobState.DONE)
    assert seen == sorted(seen) and len(seen) == 2_503
    assert sum(1 for _ in store.iter_jobs([JobState.QUEUED])) == 1_251 - 5
    assert [job.id for job in store.iter_jobs([JobState.DONE])] == [500, 1000, 1500, 2000, 2500]
    assert sum(1 for _ in store.iter_jobs(inbox="other")) == 0


# -- results and the duplicate cache ------------------------------------------------------------


def test_results_round_trip_binary_data_and_replace(store: Store) -> None:
    job = add(store, "scan.pdf")
    assert store.results_for(job.id) is None
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\x00\xff%%EOF"
    results = (ResultFile(type="Text", data="Grüße\n".encode()), ResultFile(type="Pdf", data=pdf))
    store.save_results(job.id, results)
    assert store.results_for(job.id) == results
    store.save_results(job.id, [ResultFile(type="Hocr", data=b"<html/>")])
    assert store.results_for(job.id) == (ResultFile(type="Hocr", data=b"<html/>"),)
    store.save_results(job.id, [])
    assert store.results_for(job.id) == ()


def test_find_done_results_returns_the_latest_done_job_with_results(store: Store) -> None:
    older = finish(store, add(store, "1.png"), sha256="s1", now=200.0)
    newer = finish(store, add(store, "2.png"), sha256="s1", now=300.0)
    finish(store, add(store, "3.png"), sha256="s1", now=400.0, results=False)
    failed = add(store, "4.png")
    store.update(
        failed.id,
        now=500.0,
        state=JobState.FAILED,
        fingerprint=Fingerprint(device=1, inode=9, size=1, mtime_ns=1, sha256="s1"),
    )
    store.save_results(failed.id, [ResultFile(type="Text", data=b"failed")])

    found = store.find_done_results(sha256="s1", profile_hash=PROFILE, under=IN)
    assert found is not None
    job, results = found
    assert job == newer and job != older
    assert results == (ResultFile(type="Text", data=f"text {newer.id}".encode()),)
    assert store.find_done_results(sha256="s1", profile_hash="profile-b", under=IN) is None
    assert store.find_done_results(sha256="s2", profile_hash=PROFILE, under=IN) is None


def test_a_result_recorded_for_another_inbox_folder_is_never_reused(store: Store) -> None:
    """Two configs sharing a state file, each with an inbox named ``scans``."""
    here = finish(store, add(store, "same.png"), sha256="s1", now=200.0)
    elsewhere = store.add_job(
        inbox=INBOX, path=Path("/other/scans/same.png"), profile_hash=PROFILE, now=300.0
    )
    finish(store, elsewhere, sha256="s1", now=300.0)
    found = store.find_done_results(sha256="s1", profile_hash=PROFILE, under=IN)
    assert found is not None and found[0] == here  # not the newer one from the other folder
    assert store.find_done_results(sha256="s1", profile_hash=PROFILE, under=Path("/in2")) is None


def test_counts_of_an_inbox_are_only_of_files_in_its_folder(store: Store) -> None:
    add(store, "mine.png")
    store.add_job(inbox=INBOX, path=Path("/in2/theirs.png"), profile_hash=PROFILE, now=100.0)
    store.add_job(inbox=INBOX, path=Path("/other/x.png"), profile_hash=PROFILE, now=50.0)
    assert store.count_by_state(inbox=INBOX, under=IN)[JobState.SETTLING] == 1
    oldest = store.oldest_waiting(inbox=INBOX, under=IN)
    assert oldest is not None and oldest.path == IN / "mine.png"
    assert store.count_by_state(inbox=INBOX)[JobState.SETTLING] == 3  # without a folder: all


def test_prune_deletes_old_finished_rows_but_keeps_the_duplicate_cache(store: Store) -> None:
    older = finish(store, add(store, "1.png"), sha256="s1", now=200.0)
    latest = finish(store, add(store, "2.png"), sha256="s1", now=300.0)
    no_hash = add(store, "3.png")
    store.update(no_hash.id, now=250.0, state=JobState.FAILED)
    recent = finish(store, add(store, "4.png"), sha256="s2", now=900.0)
    recent_copy = finish(store, add(store, "5.png"), sha256="s2", now=950.0)
    active = add(store, "6.png", now=1.0)

    assert store.prune(finished_before=500.0) == 2
    remaining = {job.id for job in store.jobs()}
    assert remaining == {latest.id, recent.id, recent_copy.id, active.id}
    with pytest.raises(JobNotFound):  # its results went with it
        store.results_for(older.id)
    found = store.find_done_results(sha256="s1", profile_hash=PROFILE, under=IN)
    assert found is not None and found[0] == latest

    assert store.prune(finished_before=10_000.0) == 1  # only the older copy of s2 goes
    assert {job.id for job in store.jobs()} == {latest.id, recent_copy.id, active.id}
    conn = sqlite3.connect(store.path)
    try:  # no orphaned result rows survive the cascade
        orphans = conn.execute(
            "SELECT count(*) FROM results WHERE job_id NOT IN (SELECT id FROM jobs)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert orphans == 0


def test_finished_at_is_stamped_once_and_cleared_on_reactivation(store: Store) -> None:
    stays_old = finish(store, add(store, "1.png"), sha256="a", now=100.0, results=False)
    store.update(stays_old.id, now=900.0, last_error="noted later")  # still done since 100
    refinished = add(store, "2.png")
    store.update(refinished.id, now=100.0, state=JobState.FAILED)
    store.update(refinished.id, now=200.0, state=JobState.QUEUED)
    store.update(refinished.id, now=900.0, state=JobState.FAILED)

    assert store.prune(finished_before=500.0) == 1
    assert [job.id for job in store.jobs()] == [refinished.id]


def test_a_failed_save_results_keeps_the_earlier_results(store: Store) -> None:
    job = add(store, "a.png")
    kept = (ResultFile(type="Text", data=b"first"),)
    store.save_results(job.id, kept)
    broken = [ResultFile(type="Text", data=b"new"), ResultFile(type=None, data=b"x")]  # type: ignore[arg-type]
    with pytest.raises(StateStoreError):
        store.save_results(job.id, broken)
    assert store.results_for(job.id) == kept
    with store.batch():
        with pytest.raises(StateStoreError):
            store.save_results(job.id, broken)
        add(store, "b.png")
    assert store.results_for(job.id) == kept
    assert len(store.jobs()) == 2


def test_delete_forgets_a_job_and_its_results(store: Store) -> None:
    job = add(store, "a.png")
    store.save_results(job.id, [ResultFile(type="Text", data=b"x")])
    assert store.delete(job.id) is True
    assert store.jobs() == []
    assert add(store, "a.png").state is JobState.SETTLING


# -- transactions ---------------------------------------------------------------------------------


def test_batch_commits_together_and_rolls_back_together(store: Store) -> None:
    with store.batch():
        first = add(store, "a.png")
        with pytest.raises(DuplicateJob):  # a refused write does not spoil the batch
            add(store, "a.png")
        with store.batch():  # nesting is allowed
            add(store, "b.png")
    assert [job.path.name for job in store.jobs()] == ["a.png", "b.png"]

    with pytest.raises(RuntimeError, match="boom"), store.batch():
        store.update(first.id, now=1.0, state=JobState.QUEUED)
        add(store, "c.png")
        raise RuntimeError("boom")
    assert [job.path.name for job in store.jobs()] == ["a.png", "b.png"]
    assert store.get(first.id).state is JobState.SETTLING


def test_a_failed_nested_batch_rolls_back_only_its_own_writes(store: Store) -> None:
    with store.batch():
        add(store, "a.png")
        with pytest.raises(RuntimeError), store.batch():
            add(store, "b.png")
            raise RuntimeError("inner")
        add(store, "c.png")
    assert [job.path.name for job in store.jobs()] == ["a.png", "c.png"]


def test_a_reader_sees_committed_rows_while_the_writer_holds_a_transaction(
    store: Store, db_path: Path
) -> None:
    committed = add(store, "a.png")
    with Store.open(db_path, readonly=True) as reader, store.batch():
        add(store, "b.png")
        store.update(committed.id, now=150.0, state=JobState.QUEUED)
        assert reader.jobs() == [committed]
        assert reader.count_by_state()[JobState.SETTLING] == 1
        with pytest.raises(StateStoreError, match="read-only"):
            reader.update(committed.id, now=1.0, attempts=1)
    with Store.open(db_path, readonly=True) as reader:
        assert [job.path.name for job in reader.jobs()] == ["a.png", "b.png"]


def test_a_reader_in_another_process_reads_while_the_daemon_writes(
    store: Store, db_path: Path
) -> None:
    add(store, "a.png")
    script = f"""
        from pathlib import Path
        from ocrwatch.store import Store
        with Store.open(Path({str(db_path)!r}), readonly=True) as reader:
            print(len(reader.jobs()))
    """
    with store.batch():
        add(store, "b.png")
        output = run_python(script)
    assert output.stdout.strip() == "1"


def test_a_second_writer_is_refused(store: Store, db_path: Path) -> None:
    with pytest.raises(StateStoreError, match="in use by another"):
        Store.open(db_path)
    store.close()
    with Store.open(db_path) as again:
        assert again.jobs() == []


def test_a_second_writer_is_told_which_config_holds_the_store_and_what_to_do(
    db_path: Path, tmp_path: Path
) -> None:
    first_config = tmp_path / "config.example.yaml"
    with Store.open(db_path, holder=first_config), pytest.raises(StateStoreError) as refused:
        Store.open(db_path, holder=tmp_path / "other.yaml")
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and str(first_config) in message
    assert "state.path" in message  # the way to run a second setup beside it


def test_a_readonly_open_of_a_missing_store_fails(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="does not exist"):
        Store.open(tmp_path / "nothing.db", readonly=True)


def test_calls_on_a_closed_store_raise_state_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StateStoreError, match=re.escape(str(store.path))):
        store.jobs()


# -- durability -----------------------------------------------------------------------------------


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_committed_submitting_row_survives_sigkill(db_path: Path) -> None:
    script = f"""
        import os, signal
        from pathlib import Path
        from ocrwatch.model import JobState
        from ocrwatch.store import Store
        store = Store.open(Path({str(db_path)!r}))
        job = store.add_job(
            inbox="scans", path=Path("/in/a.png"), profile_hash="p",
            state=JobState.QUEUED, now=1.0,
        )
        store.update(job.id, now=2.0, expect_state=JobState.QUEUED, state=JobState.SUBMITTING)
        with store.batch():  # an uncommitted write must vanish
            store.add_job(inbox="scans", path=Path("/in/b.png"), profile_hash="p", now=3.0)
            os.kill(os.getpid(), signal.SIGKILL)
    """
    result = run_python(script)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with Store.open(db_path) as reopened:  # the dead writer's lock went with it
        assert [(job.path.name, job.state) for job in reopened.jobs()] == [
            ("a.png", JobState.SUBMITTING)
        ]


# -- files, schema versions and damage ------------------------------------------------------------


def test_new_files_and_directories_are_private(db_path: Path) -> None:
    with Store.open(db_path) as opened:
        add(opened, "a.png")
        for name in ("ocrwatch.db", "ocrwatch.db-wal", "ocrwatch.db.lock"):
            assert stat.S_IMODE((db_path.parent / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_an_empty_database_is_migrated_to_the_current_version(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.touch()  # a zero-byte file is a version-0 SQLite database
    with Store.open(db_path) as opened:
        add(opened, "a.png")
    assert user_version(db_path) == SCHEMA_VERSION


def test_a_newer_schema_version_is_refused(db_path: Path) -> None:
    with Store.open(db_path):
        pass
    set_user_version(db_path, SCHEMA_VERSION + 1)
    for readonly in (False, True):
        with pytest.raises(StateStoreError, match="newer than this ocrwatch"):
            Store.open(db_path, readonly=readonly)


def test_a_reader_does_not_migrate_an_old_store(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.touch()
    with pytest.raises(StateStoreError, match="upgrades it"):
        Store.open(db_path, readonly=True)
    assert db_path.stat().st_size == 0


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(StateStoreError, match="not an ocrwatch state store"):
        Store.open(foreign)
    with sqlite3.connect(foreign) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    conn.close()


def test_a_corrupt_file_raises_state_store_error_naming_it(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(b"this is a scanner log, not a database\n" * 200)
    with pytest.raises(StateStoreError, match=re.escape(str(db_path))):
        Store.open(db_path)
    with pytest.raises(StateStoreError, match=re.escape(str(db_path))):
        Store.open(db_path, readonly=True)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()
