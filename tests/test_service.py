"""The daemon end to end, in-process: real emulator over HTTP, real client, SQLite and files."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon_harness import emulator_submits, run_until, running_service, write_config
from PIL import Image

from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_jpeg, make_pdf, make_png, make_tiff
from ocrwatch.model import JobState
from ocrwatch.service import MAX_DISCOVERIES_PER_TICK, MAX_SETTLE_CHECKS_PER_TICK

MakeEmulator = Callable[..., Emulator]


def drop(path: Path, data: bytes) -> Path:
    """Write a file the way a careful producer does: a temp name, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)
    return path


def error_reason(error_dir: Path, name: str) -> dict[str, Any]:
    reason = json.loads((error_dir / f"{name}.error.json").read_text())
    assert (error_dir / name).exists(), "the file itself lands beside its reason"
    return reason


def test_image_is_recognised_into_a_sidecar(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "scan.png", make_png("Hello ocrwatch\nsecond line"))
        sidecar = tmp_path / "inbox" / "scan.png.txt"
        run_until(service, sidecar.exists)
        assert sidecar.read_text() == "Hello ocrwatch\nsecond line\n"
        run_until(service, service.is_idle)
        assert store.count_by_state()[JobState.DONE] == 1
    assert (tmp_path / "inbox" / "scan.png").exists(), "keep is the default disposition"
    assert emulator_submits(emulator) == 1


def test_files_present_at_start_and_every_result_type(tmp_path: Path, emulator: Emulator) -> None:
    drop(tmp_path / "inbox" / "a.jpg", make_jpeg("jpeg words"))
    drop(tmp_path / "inbox" / "b.pdf", make_pdf(["page one", "page two"]))
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "result_types": ["text", "pdf", "hocr"],
            }
        ],
    )
    with running_service(config) as (service, _, _):
        run_until(service, service.is_idle)
    inbox = tmp_path / "inbox"
    assert (inbox / "a.jpg.txt").read_text() == "jpeg words\n"
    assert (inbox / "a.jpg.pdf").read_bytes().startswith(b"%PDF-")
    assert b"ocr_line" in (inbox / "a.jpg.hocr").read_bytes()
    assert (inbox / "b.pdf.txt").read_text() == "page one\n\fpage two\n"
    assert emulator.stats().submits.get("RecognizePdf") == 1


def test_json_result_and_moving_the_source_to_a_done_folder(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "result_types": ["json"],
                "output_dir": "out",
                "on_success": "move",
                "done_dir": "done",
                "recursive": True,
            }
        ],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "2026" / "nov" / "scan.png", make_png("json please"))
        run_until(service, (tmp_path / "done" / "2026" / "nov" / "scan.png").exists)
    blocks = json.loads((tmp_path / "out" / "2026" / "nov" / "scan.png.json").read_text())
    assert "json please" in json.dumps(blocks)
    assert not (tmp_path / "inbox" / "2026" / "nov" / "scan.png").exists()


def test_regions_are_written_in_order_with_their_names(tmp_path: Path, emulator: Emulator) -> None:
    def rect(top: int, bottom: int) -> dict[str, int]:
        return {"top_left_x": 0, "top_left_y": top, "bottom_right_x": 800, "bottom_right_y": bottom}

    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "forms",
                "path": "inbox",
                "error_dir": "errors",
                "mode": "regions",
                "regions": [
                    {"rect": rect(400, 600), "order": 2, "name": "Footer"},
                    {"rect": rect(0, 200), "order": 1, "name": "Header"},
                ],
            }
        ],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "form.png", make_png("top line\nmiddle line\nbottom line"))
        sidecar = tmp_path / "inbox" / "form.png.txt"
        run_until(service, sidecar.exists)
    assert sidecar.read_text() == "## Header\ntop line\n\n## Footer\nbottom line\n"
    assert emulator.stats().submits.get("RecognizeRegions") == 1


def test_label_mode_uses_recognize_label(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "labels", "path": "inbox", "error_dir": "errors", "mode": "label"}],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "parcel.png", make_png("SHIP TO 221B"))
        run_until(service, (tmp_path / "inbox" / "parcel.png.txt").exists)
    assert emulator.stats().submits.get("RecognizeLabel") == 1


def test_task_error_sends_the_file_to_the_error_folder_with_its_reason(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(faults=Faults(task_error=1.0))
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "bad.png", make_png("doomed"))
        run_until(service, (tmp_path / "errors" / "bad.png.error.json").exists)
        assert store.count_by_state()[JobState.FAILED] == 1
    reason = error_reason(tmp_path / "errors", "bad.png")
    assert reason["class"] == "task_error"
    assert reason["task_id"]
    assert reason["attempts"] == 1
    assert reason["inbox"] == "scans"
    assert not (tmp_path / "inbox" / "bad.png").exists()


def test_files_that_are_not_images_are_refused_without_calling_the_api(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "notes.png", b"this is plain text, not a PNG\n" * 10)
        run_until(service, (tmp_path / "errors" / "notes.png.error.json").exists)
    assert error_reason(tmp_path / "errors", "notes.png")["class"] == "unreadable"
    assert emulator_submits(emulator) == 0


def test_a_multi_page_tiff_goes_to_the_cloud_as_one_pdf(tmp_path: Path, emulator: Emulator) -> None:
    # The emulator refuses a multi-page TIFF as the service does; converted, it is one task.
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "pages.tif", make_tiff(["one", "two", "three"]))
        sidecar = tmp_path / "inbox" / "pages.tif.txt"
        run_until(service, sidecar.exists)
    assert sidecar.read_text().count("\f") == 2  # three pages, separated as a PDF's are
    assert emulator.stats().submits == {"RecognizePdf": 1}


def test_a_webp_is_picked_up_and_reaches_the_cloud_as_png(
    tmp_path: Path, emulator: Emulator
) -> None:
    # Aspose Cloud does not take WebP (the emulator refuses it as the service does): the
    # default include picks it up and the upload converts it without loss.
    image = Image.open(io.BytesIO(make_png("a phone screenshot"))).convert("RGB")
    webp = io.BytesIO()
    image.save(webp, "WEBP", lossless=True)
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "screen.webp", webp.getvalue())
        sidecar = tmp_path / "inbox" / "screen.webp.txt"
        run_until(service, sidecar.exists)
    assert sidecar.read_text().strip()
    assert emulator.stats().submits == {"RecognizeImage": 1}
    assert emulator.stats().tasks_by_status == {"Completed": 1}


def _api_calls(emulator: Emulator) -> int:
    stats = emulator.stats()
    return stats.total_submits + stats.fetches + stats.status_probes


def test_one_pdf_costs_fewer_api_calls_than_page_by_page(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # The two ways to send a 6-page fax to the cloud, with the service taking a second a
    # task: as one PDF (what ocrwatch does), or each page as its own single-page TIFF.
    texts = [f"page {n}" for n in range(1, 7)]
    calls = {}
    for way in ("one_pdf", "page_by_page"):
        emulator = make_emulator(processing_seconds=(1.0, 1.0))
        root = tmp_path / way
        root.mkdir()
        config = write_config(root, emulator.base_url)
        with running_service(config) as (service, _, _):
            if way == "one_pdf":
                drop(root / "inbox" / "fax.tif", make_tiff(texts))
            else:
                for n, text in enumerate(texts, start=1):
                    drop(root / "inbox" / f"fax-{n}.tif", make_tiff(text))
            expected = 1 if way == "one_pdf" else len(texts)
            run_until(service, lambda root=root, expected=expected: len(
                list((root / "inbox").glob("*.txt"))) == expected)  # fmt: skip
        calls[way] = _api_calls(emulator)
    print(f"API calls for 6 pages: {calls}")  # recorded in docs/formats.md
    assert calls["one_pdf"] < calls["page_by_page"]
    assert calls["one_pdf"] <= 3  # one POST and a poll or two


def test_a_task_that_vanished_at_the_service_is_resubmitted(
    tmp_path: Path, make_emulator: MakeEmulator, emulator_api: Callable[[Emulator], Any]
) -> None:
    emulator = make_emulator(processing_seconds=(1.0, 1.0))
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "lost.png", make_png("lost once"))
        run_until(service, lambda: bool(store.jobs([JobState.SUBMITTED])))
        (job,) = store.jobs([JobState.SUBMITTED])
        api = emulator_api(emulator)
        deleted = api.http.delete(
            f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
            params={"id": job.task_id},
            headers=api.headers(),
            timeout=10,
        )
        assert deleted.status_code == 200
        run_until(service, service.is_idle)
        assert store.count_by_state()[JobState.DONE] == 1
    assert (tmp_path / "inbox" / "lost.png.txt").read_text() == "lost once\n"
    assert emulator_submits(emulator) == 2


def test_results_that_always_expire_end_in_the_error_folder_after_max_attempts(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(0.3, 0.3), retention_seconds=0.1)
    config = write_config(tmp_path, emulator.base_url, service={"max_attempts": 2})
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "gone.png", make_png("never fetched"))
        run_until(service, (tmp_path / "errors" / "gone.png.error.json").exists)
    reason = error_reason(tmp_path / "errors", "gone.png")
    assert reason["class"] == "attempts_exhausted"
    assert reason["attempts"] == 2
    assert emulator_submits(emulator) == 2


def test_duplicate_content_reuses_the_stored_result(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "first.png", make_png("same bytes"))
        run_until(service, service.is_idle)
        run_until(service, (tmp_path / "inbox" / "first.png.txt").exists)
        drop(tmp_path / "inbox" / "copy.png", (tmp_path / "inbox" / "first.png").read_bytes())
        run_until(service, (tmp_path / "inbox" / "copy.png.txt").exists)
    assert (tmp_path / "inbox" / "copy.png.txt").read_text() == "same bytes\n"
    assert emulator_submits(emulator) == 1


def test_duplicate_skip_policy_writes_nothing(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "duplicates": "skip"}],
    )
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "first.png", make_png("same bytes"))
        run_until(service, (tmp_path / "inbox" / "first.png.txt").exists)
        drop(tmp_path / "inbox" / "copy.png", (tmp_path / "inbox" / "first.png").read_bytes())
        run_until(service, lambda: store.count_by_state().get(JobState.DONE) == 2)
    assert not (tmp_path / "inbox" / "copy.png.txt").exists()
    assert emulator_submits(emulator) == 1


def test_restart_while_tasks_are_pending_resumes_polling_without_resubmitting(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(1.5, 1.5), slots=8)
    config = write_config(tmp_path, emulator.base_url)
    for n in range(5):
        drop(tmp_path / "inbox" / f"doc{n}.png", make_png(f"document {n}"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: store.count_by_state().get(JobState.SUBMITTED) == 5)
    with running_service(config) as (service, store, _):
        run_until(service, service.is_idle)
        assert store.count_by_state().get(JobState.DONE) == 5
    assert emulator_submits(emulator) == 5
    for n in range(5):
        assert (tmp_path / "inbox" / f"doc{n}.png.txt").read_text() == f"document {n}\n"


def test_an_outage_never_sends_files_to_the_error_folder(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator()
    config = write_config(tmp_path, emulator.base_url, service={"breaker_threshold": 2})
    emulator.stop()
    with running_service(config) as (service, store, _):
        for n in range(6):
            drop(tmp_path / "inbox" / f"o{n}.png", make_png(f"outage {n}"))
        run_until(service, lambda: "paused" in service.status_line())
        # Keep it down for a while: the breaker holds submissions; nothing fails.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            service.tick(time.time())
            time.sleep(0.05)
        assert not (tmp_path / "errors").exists() or not any((tmp_path / "errors").iterdir())
        emulator.start()
        run_until(service, service.is_idle, timeout_seconds=60)
        assert store.count_by_state().get(JobState.DONE) == 6
    assert emulator_submits(emulator) == 6


def test_a_file_written_slowly_is_submitted_once_when_complete(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "settle_seconds": 0.5}],
    )
    data = make_png("written in chunks " * 20, width=1200, height=900)
    target = tmp_path / "inbox" / "chunked.png"
    with running_service(config) as (service, _, _), target.open("wb") as out:
        step = max(1, len(data) // 8)
        for offset in range(0, len(data), step):
            out.write(data[offset : offset + step])
            out.flush()
            os.fsync(out.fileno())
            until = time.monotonic() + 0.35
            while time.monotonic() < until:
                service.tick(time.time())
                time.sleep(0.02)
        out.close()
        run_until(service, (tmp_path / "inbox" / "chunked.png.txt").exists)
    assert (tmp_path / "inbox" / "chunked.png.txt").read_text() == "written in chunks " * 20 + "\n"
    assert emulator_submits(emulator) == 1


def test_polling_mode_and_copied_and_renamed_files(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "watch": "polling",
                "polling_interval_seconds": 0.2,
            }
        ],
        rescan_interval_seconds=3600,
    )
    with running_service(config) as (service, _, _):
        (tmp_path / "inbox" / "copied.png").write_bytes(make_png("copied in"))
        drop(tmp_path / "inbox" / "renamed.png", make_png("renamed in"))
        run_until(service, service.is_idle)
        run_until(service, (tmp_path / "inbox" / "renamed.png.txt").exists)
        run_until(service, (tmp_path / "inbox" / "copied.png.txt").exists)
    assert (tmp_path / "inbox" / "copied.png.txt").read_text() == "copied in\n"


def test_a_thousand_files_dropped_at_once(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(slots=16)
    config = write_config(
        tmp_path, emulator.base_url, service={"max_in_flight": 64, "upload_concurrency": 8}
    )
    with running_service(config) as (service, store, _):
        for n in range(1000):
            # Distinct content, so the duplicate cache does not short-cut the API.
            drop(tmp_path / "inbox" / f"bulk{n:04}.png", make_png(f"bulk {n}", width=96, height=32))
        run_until(
            service,
            lambda: store.count_by_state().get(JobState.DONE, 0) == 1000,
            timeout_seconds=240,
        )
    assert emulator_submits(emulator) == 1000
    assert len(list((tmp_path / "inbox").glob("*.png.txt"))) == 1000


def test_odd_names_symlinks_and_fifos(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "inbox"
    undecodable = Path(os.fsdecode(os.fsencode(str(inbox)) + b"/caf\xe9.png"))
    nfd = inbox / "Cafe\u0301 menu.png"
    long_name = inbox / ("x" * 251 + ".png")  # 255 bytes: the sidecar name must be shortened
    outside = tmp_path / "secret.png"
    outside.write_bytes(make_png("outside the inbox"))
    with running_service(config) as (service, _, _):
        drop(undecodable, make_png("undecodable name"))
        drop(nfd, make_png("nfd name"))
        long_name.write_bytes(make_png("long name"))
        (inbox / "link.png").symlink_to(outside)
        os.mkfifo(inbox / "pipe.png")
        run_until(service, (tmp_path / "errors" / "pipe.png.error.json").exists)
        run_until(service, (tmp_path / "errors" / "link.png.error.json").exists)
        run_until(service, Path(str(undecodable) + ".txt").exists)
        run_until(service, Path(str(nfd) + ".txt").exists)
        run_until(service, lambda: len(list(inbox.glob("x*"))) == 2)
    assert Path(str(undecodable) + ".txt").read_text() == "undecodable name\n"
    assert Path(str(nfd) + ".txt").read_text() == "nfd name\n"
    long_sidecars = [p for p in inbox.iterdir() if p.name.startswith("x" * 200) and p != long_name]
    assert len(long_sidecars) == 1 and long_sidecars[0].read_text() == "long name\n"
    assert len(os.fsencode(long_sidecars[0].name)) <= 255
    assert "symbolic link" in error_reason(tmp_path / "errors", "link.png")["message"]
    assert (tmp_path / "errors" / "link.png").is_symlink(), "moved as the link itself"
    assert outside.read_bytes().startswith(b"\x89PNG"), "the link target is untouched"
    assert "FIFO" in error_reason(tmp_path / "errors", "pipe.png")["message"]
    assert emulator_submits(emulator) == 3


def test_a_file_replaced_while_its_task_runs_is_processed_again(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(1.0, 1.0))
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "s", "path": "inbox", "error_dir": "errors", "on_success": "delete"}],
    )
    target = tmp_path / "inbox" / "doc.png"
    with running_service(config) as (service, store, _):
        drop(target, make_png("first version"))
        run_until(service, lambda: bool(store.jobs([JobState.SUBMITTED])))
        drop(target, make_png("second version"))
        run_until(service, lambda: not target.exists())
        run_until(service, service.is_idle)
    assert (tmp_path / "inbox" / "doc.png.txt").read_text() == "second version\n"
    assert emulator_submits(emulator) == 2, "the first result was not used for the new content"


def test_an_outage_of_a_full_minute_loses_nothing(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(processing_seconds=(0.2, 0.5))
    config = write_config(tmp_path, emulator.base_url, service={"breaker_probe_seconds": 5})
    with running_service(config) as (service, store, _):
        for n in range(10):
            drop(tmp_path / "inbox" / f"before{n}.png", make_png(f"before {n}"))
        run_until(service, lambda: emulator_submits(emulator) >= 5)
        emulator.stop()
        for n in range(10):
            drop(tmp_path / "inbox" / f"during{n}.png", make_png(f"during {n}"))
        back_at = time.monotonic() + 60.0
        while time.monotonic() < back_at:
            service.tick(time.time())
            time.sleep(0.05)
        assert not (tmp_path / "errors").exists() or not any((tmp_path / "errors").iterdir())
        emulator.start()
        run_until(service, service.is_idle, timeout_seconds=90)
        assert store.count_by_state()[JobState.DONE] == 20
    for n in range(10):
        assert (tmp_path / "inbox" / f"during{n}.png.txt").read_text() == f"during {n}\n"


def test_one_tick_discovers_and_settle_checks_a_bounded_number_of_files(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A drop of thousands of files must not hold up the submits and polls of one tick."""
    files = MAX_DISCOVERIES_PER_TICK * 2 + 50
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config, watch=False) as (service, store, _):
        for n in range(files):
            path = tmp_path / "inbox" / f"{n:04}.png"
            path.write_bytes(make_png(f"file {n}"))
            service.intake.put(("scans", path, True))  # as the watcher reports them
        now = service.now()
        service.tick(now)
        assert store.count_by_state()[JobState.SETTLING] == MAX_DISCOVERIES_PER_TICK
        service.tick(now)
        service.tick(now)
        assert store.count_by_state()[JobState.SETTLING] == files
        service.tick(now + 5.0)  # every file is due for its settle check now
        assert store.count_by_state()[JobState.SETTLING] == files - MAX_SETTLE_CHECKS_PER_TICK
        run_until(
            service, lambda: store.count_by_state()[JobState.DONE] == files, timeout_seconds=120
        )
