"""``ocrwatch explain PATH`` via the CLI: rules, settle status, history, beside a live daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import emulator_submits, write_config

from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png, make_tiff
from ocrwatch.store import Store

MakeEmulator = Callable[..., Emulator]


def ocrwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def explain(config: Path, path: Path) -> dict[str, Any]:
    result = ocrwatch("explain", str(path), "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture
def config(tmp_path: Path, emulator: Emulator) -> Path:
    return write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "exclude": ["draft-*"],
                "settle_seconds": 300,
                "max_settle_seconds": 600,
            }
        ],
    )


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        (".hidden.png", "ignored: hidden file"),
        ("draft-1.png", "ignored: exclude pattern 'draft-*'"),
        ("scan.png.part", "ignored: built-in ignore '*.part'"),
        ("scan.png.txt", "ignored: ocrwatch's own output (output_template '{name}.{ext}')"),
        ("notes.docx", "ignored: matches none of the include patterns"),
        ("sub/page.png", "ignored: in a subfolder of a non-recursive inbox"),
    ],
)
def test_the_rule_that_ignores_a_file_is_named(
    tmp_path: Path, config: Path, name: str, verdict: str
) -> None:
    path = tmp_path / "inbox" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(make_png("x"))
    report = explain(config, path)
    assert report["verdict"] == verdict
    if not name.startswith("sub/"):
        assert report["facts"]["rule"] == verdict.replace("ignored: ", "the daemon ignores it: ")
    assert report["facts"]["inbox"].startswith(f"scans ({tmp_path / 'inbox'}): mode image")


def test_the_settle_status_is_told_as_it_stands_now(tmp_path: Path, config: Path) -> None:
    fresh = tmp_path / "inbox" / "fresh.png"
    fresh.write_bytes(make_png("just written"))
    truncated = tmp_path / "inbox" / "truncated.png"
    truncated.write_bytes(make_png("cut short")[:-20])
    link = tmp_path / "inbox" / "link.png"
    link.symlink_to(fresh)

    fresh_report = explain(config, fresh)
    assert fresh_report["verdict"].startswith("settling: ")
    assert fresh_report["verdict"].endswith(" s more without a change")
    assert fresh_report["facts"]["complete"] == "looks complete"
    assert "PNG, last changed" in fresh_report["facts"]["file"]
    assert fresh_report["facts"]["history"].startswith("no state file yet")

    assert explain(config, truncated)["verdict"] == (
        "waiting: incomplete PNG (no IEND chunk) (fails as incomplete once unchanged for "
        "incomplete_after_seconds 300, or after max_settle_seconds 600)"
    )
    assert explain(config, link)["verdict"] == (
        "refused (symbolic link): it goes to the error folder"
    )
    outside = explain(config, tmp_path / "config.yaml")
    assert outside["verdict"] == "not watched: not inside any inbox"


def test_history_of_a_done_file_and_of_a_failed_one(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    good = tmp_path / "inbox" / "good.png"
    good.write_bytes(make_png("explained"))
    (tmp_path / "inbox" / "junk.png").write_bytes(b"not an image at all")
    assert ocrwatch("once", "-c", str(config)).returncode == 1

    done = explain(config, good)
    assert done["verdict"] == "done: processed, and unchanged since"
    (done_job,) = done["history"]
    assert done_job["state"] == "done" and done_job["task_id"] and done_job["current_profile"]

    failed = explain(config, tmp_path / "errors" / "junk.png")
    assert failed["verdict"] == (
        f"failed; `ocrwatch retry {tmp_path / 'errors' / 'junk.png'}` moves it back to the inbox"
    )
    assert failed["facts"]["reason"].startswith("[unreadable] ")
    assert failed["facts"]["came from"] == str(tmp_path / "inbox" / "junk.png")
    (job,) = failed["history"]
    assert job["state"] == "failed" and job["error_class"] == "unreadable"

    # Its reason file is explained as what it is: the reason for junk.png, not a failed scan.
    reason = explain(config, tmp_path / "errors" / "junk.png.error.json")
    assert reason["facts"]["reason file"] == (
        "junk.png.error.json is ocrwatch's reason file for junk.png; the rest is about junk.png"
    )
    assert reason["verdict"] == failed["verdict"]
    assert reason["facts"]["reason"] == failed["facts"]["reason"]
    assert reason["history"] == failed["history"]

    # A settled file and no daemon running: explain says so instead of promising a next look.
    settled = tmp_path / "inbox" / "settled.png"
    settled.write_bytes(make_png("waiting for a daemon"))
    os.utime(settled, (time.time() - 3600, time.time() - 3600))
    assert explain(config, settled)["verdict"] == (
        "settled: no daemon is running on this state file; it is submitted when the daemon runs"
    )
    # While a process holds the state file's writer lock (as the daemon does), it says so.
    with Store.open(tmp_path / "state" / "state.db"):
        assert explain(config, settled)["verdict"] == (
            "settled: it is submitted at the daemon's next look"
        )

    text = ocrwatch("explain", str(good), "-c", str(config))  # the human-readable form
    assert text.returncode == 0
    assert "  verdict: done: processed, and unchanged since" in text.stdout
    assert f"  job {done_job['job_id']}: done (seen " in text.stdout


def test_explain_works_while_the_daemon_runs(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(processing_seconds=(5.0, 5.0))
    config = write_config(tmp_path, emulator.base_url)
    path = tmp_path / "inbox" / "busy.png"
    process = subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        path.write_bytes(make_png("in flight"))
        deadline = time.monotonic() + 30
        while emulator_submits(emulator) < 1:
            assert time.monotonic() < deadline, "never submitted"
            time.sleep(0.05)
        report = explain(config, path)
        assert report["verdict"].startswith("in progress: ")
        assert report["history"][0]["state"] in ("submitting", "submitted")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_explain_says_how_a_file_would_be_sent(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url, defaults={"settle_seconds": 0})
    fax = tmp_path / "inbox" / "fax.tif"
    fax.write_bytes(make_tiff(["one", "two"]))
    report = explain(config, fax)
    assert report["facts"]["preflight"] == (
        "passes: it would be submitted to the cloud, converted to one PDF (lossless), "
        "sent to RecognizePdf (pdf)"
    )
    scan = tmp_path / "inbox" / "scan.png"
    scan.write_bytes(make_png("x"))
    assert explain(config, scan)["facts"]["preflight"] == (
        "passes: it would be submitted to the cloud, as is (image)"
    )
