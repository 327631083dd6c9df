"""Crash consistency: the real daemon, SIGKILLed at chosen moments, never loses or corrupts a file.

The daemon runs as a subprocess against the emulator (in this process, over real HTTP) with
processing time and response latency, so POSTs are in flight when it dies. 300 documents
with known text are fed over the run while the daemon is killed at least 20 times (seeded):
right after a POST reached the server (before its task id can be recorded), while a sidecar
temp file exists, just after a sidecar appeared (while the source is being moved), just after
a move, and at random. Each kill is followed by a restart; a final ``ocrwatch once`` finishes
the rest. Figures are printed (run with ``-s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import base64
import json
import math
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import EmulatorApi
from crash_harness import (
    Document,
    SidecarAuditor,
    drop,
    final_names,
    listing,
    make_corpus,
    plan_kill,
    temp_names,
    wait_for_trigger,
)
from daemon_harness import running_service, write_config
from daemon_process import daemon, run_once

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.model import JobState
from ocrwatch.outputs import remove_stale_temp_files
from ocrwatch.outputs.moves import TEMP_PATTERN, temp_name
from ocrwatch.store import Store

MakeEmulator = Callable[..., Emulator]

SEED = 5_2026
FILES = 300
KILLS = 24
FEED_RUNS = 16  # the corpus is dropped over the first runs; the later ones drain it
TRIGGER_TIMEOUT_SECONDS = 12.0
UPLOAD_CONCURRENCY = 1  # one POST in flight at a time: at most one duplicate per kill


@dataclass(frozen=True, slots=True)
class Kill:
    fired: str
    submitting: int  # rows whose POST may have reached the server without a recorded task id
    writing: int
    disposing: int
    temp_files: int  # sidecar temp files left in the output folder


def _states_after_kill(state_db: Path) -> Counter[JobState]:
    if not state_db.exists():
        return Counter()
    with Store.open(state_db, readonly=True) as store:
        return Counter(store.count_by_state())


def test_sigkill_at_chosen_moments_never_loses_or_corrupts_a_file(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    rng = random.Random(SEED)
    corpus = make_corpus(rng, FILES)
    emulator = make_emulator(
        processing_seconds=(0.1, 0.6),
        slots=8,
        seed=SEED,
        faults=Faults(latency_seconds=(0.05, 0.3)),
    )
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "crash",
                "path": "inbox",
                "output_dir": "out",
                "error_dir": "errors",
                "on_success": "move",
                "done_dir": "done",
                "settle_seconds": 0.2,
            }
        ],
        service={
            "upload_concurrency": UPLOAD_CONCURRENCY,
            "poll_concurrency": 4,
            "max_in_flight": 16,
            "read_timeout_seconds": 30,
        },
        rescan_interval_seconds=5,
    )
    inbox, out, done, errors = (tmp_path / n for n in ("inbox", "out", "done", "errors"))
    state_db, log_path = tmp_path / "state" / "state.db", tmp_path / "daemon.log"
    valid = [d for d in corpus if d.text is not None]
    junk = [d for d in corpus if d.text is None]
    auditor = SidecarAuditor(out, {d.sidecar_name: d.text for d in valid if d.text})
    pending = list(corpus)
    batch = math.ceil(FILES / FEED_RUNS)
    kills: list[Kill] = []
    began = time.monotonic()

    def feed(count: int) -> None:
        for _ in range(min(count, len(pending))):
            drop(inbox, pending.pop(0), atomically=rng.random() < 0.7)

    auditor.start()
    try:
        for _ in range(KILLS):
            plan = plan_kill(rng)
            share = batch if pending else 0
            early = share if plan.trigger == "random" else rng.randrange(share + 1)
            feed(early)
            with daemon(config, log_path) as running:
                started_at = time.monotonic()
                if plan.trigger != "random":
                    running.wait_for_event("daemon_ready")
                    feed(share - early)
                fired = wait_for_trigger(
                    plan,
                    started_at=started_at,
                    submits=lambda: emulator.stats().total_submits,
                    out=out,
                    done=done,
                    timeout_seconds=TRIGGER_TIMEOUT_SECONDS,
                )
                running.kill()
            states = _states_after_kill(state_db)
            kills.append(
                Kill(
                    fired=fired,
                    submitting=states[JobState.SUBMITTING],
                    writing=states[JobState.WRITING],
                    disposing=states[JobState.DISPOSING],
                    temp_files=len(temp_names(out)),
                )
            )
        killed_for_seconds = time.monotonic() - began
        finished_under_kills = len(final_names(out)) + len(final_names(errors)) // 2
        feed(len(pending))
        final = run_once(config, timeout_seconds=240)
    finally:
        auditor.stop()
    assert final.returncode in (0, 1), final.stderr[-4000:]

    stats = emulator.stats()
    duplicates = stats.total_submits - len(valid)
    logs = log_path.read_text(errors="replace") + final.stderr
    resubmitted = logs.count('"task_resubmit_after_crash"')
    report = {
        "files": FILES,
        "valid": len(valid),
        "junk": len(junk),
        "kills": len(kills),
        "finished_before_the_final_run": finished_under_kills,
        "fired": dict(Counter(k.fired for k in kills)),
        "kills_with_post_in_flight": sum(1 for k in kills if k.submitting),
        "kills_while_writing": sum(1 for k in kills if k.writing),
        "kills_while_disposing": sum(1 for k in kills if k.disposing),
        "kills_with_temp_sidecar": sum(1 for k in kills if k.temp_files),
        "server_submits": stats.total_submits,
        "duplicate_submissions": duplicates,
        "resubmits_after_crash_logged": resubmitted,
        "sidecar_reads_by_auditor": auditor.reads,
        "temp_files_seen_by_auditor": auditor.temp_sightings,
        "seconds_of_kill_runs": round(killed_for_seconds, 1),
        "seconds_total": round(time.monotonic() - began, 1),
    }
    print("\ncrash-consistency report:", json.dumps(report, indent=2))

    assert not auditor.violations, auditor.violations[:10]
    _assert_every_file_accounted_for(corpus, inbox=inbox, out=out, done=done, errors=errors)
    leftovers = [p for p in tmp_path.rglob("*") if TEMP_PATTERN.fullmatch(p.name)]
    assert not leftovers, f"temp files left behind: {leftovers}"
    with Store.open(state_db, readonly=True) as store:
        counts = store.count_by_state()
    assert not any(n for state, n in counts.items() if state.is_active), counts
    assert len(kills) >= 20
    assert report["kills_with_post_in_flight"] >= 1, "no kill landed between POST and task id"
    assert 0 <= duplicates <= len(kills) * UPLOAD_CONCURRENCY, report
    assert duplicates <= report["kills_with_post_in_flight"], report


def _assert_every_file_accounted_for(
    corpus: list[Document], *, inbox: Path, out: Path, done: Path, errors: Path
) -> None:
    """Each document: one correct sidecar and its source in done, or in errors with a reason."""
    valid = [d for d in corpus if d.text is not None]
    junk = [d for d in corpus if d.text is None]
    assert final_names(inbox) == [], f"left in the inbox: {sorted(listing(inbox))[:10]}"
    assert sorted(final_names(out)) == sorted(d.sidecar_name for d in valid)
    assert sorted(listing(done)) == sorted(d.name for d in valid), "each source moved once"
    expected_errors = sorted([d.name for d in junk] + [d.name + ".error.json" for d in junk])
    assert sorted(listing(errors)) == expected_errors
    missing_text = [
        d.name
        for d in valid
        if (out / d.sidecar_name).read_text(encoding="utf-8") != d.text + "\n"
        or (done / d.name).read_bytes() != d.data
    ]
    assert not missing_text, missing_text[:10]
    for document in junk:
        reason = json.loads((errors / (document.name + ".error.json")).read_text())
        assert reason["class"] == "unreadable", reason
        assert (errors / document.name).read_bytes() == document.data


def test_the_auditor_would_see_a_sidecar_written_in_place(tmp_path: Path) -> None:
    """The harness's own check: a non-atomic write is caught while it is half done."""
    auditor = SidecarAuditor(tmp_path, {"doc.png.txt": "the whole text"})
    auditor.start()
    try:
        with (tmp_path / "doc.png.txt").open("w") as file:
            file.write("the wh")
            file.flush()
            deadline = time.monotonic() + 10
            while not auditor.violations and time.monotonic() < deadline:
                time.sleep(0.005)
            file.write("ole text")
    finally:
        auditor.stop()
    assert auditor.violations, "a partial sidecar went unseen"
    assert auditor.violations[0].startswith("doc.png.txt: "), auditor.violations


def test_stale_temp_files_are_removed_in_every_folder_below_but_not_through_links(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "out", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    stale = [root / temp_name("x.png.txt"), root / "a" / "b" / temp_name("y.pdf.txt")]
    kept = [outside / temp_name("z.png.txt"), root / "a" / "keep.txt"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    removed = remove_stale_temp_files(
        root, older_than_seconds=0, now=time.time() + 1, recursive=True
    )
    assert sorted(removed) == sorted(stale)
    assert all(path.exists() for path in kept)


def test_temp_files_a_crash_left_anywhere_ocrwatch_writes_are_removed_at_start(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "recursive": True,
                "output_dir": "out",
                "error_dir": "errors",
                "on_success": "move",
                "done_dir": "done",
            }
        ],
    )
    # What a SIGKILL inside write_atomic leaves: a sidecar of a file in a subfolder, a reason
    # file being written by move_to_error, a cross-filesystem copy into the done folder.
    leftovers = [
        tmp_path / "out" / temp_name("top.png.txt"),
        tmp_path / "out" / "sub" / temp_name("deep.png.txt"),
        tmp_path / "errors" / temp_name("bad.png.error.json"),
        tmp_path / "errors" / "sub" / temp_name("worse.png.error.json"),
        tmp_path / "done" / temp_name("moved.png"),
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    with running_service(config, watch=False):
        pass
    assert [path for path in leftovers if path.exists()] == []


def test_an_upload_cut_off_mid_body_creates_no_task(
    emulator: Emulator, emulator_api: Callable[[Emulator], EmulatorApi]
) -> None:
    """What the server sees of a daemon killed while sending a body: it must not bill a task."""
    token = emulator_api(emulator).token()
    body = json.dumps({"image": base64.b64encode(make_png("cut off")).decode(), "settings": {}})
    head = (
        "POST /v5.0/ocr/RecognizeImage HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{emulator.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=30) as connection:
        connection.sendall(head.encode() + body[: len(body) // 2].encode())
        connection.shutdown(socket.SHUT_WR)  # what the kernel does for a killed process
        while connection.recv(65536):  # the server has given up on it once it closes
            pass
    assert emulator.stats().total_submits == 0
