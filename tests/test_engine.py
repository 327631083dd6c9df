"""The local engine's behaviour: settings, PDFs, bad input, and surviving its workers' deaths.

Real worker processes and real models throughout; pages are rendered here (see
``test_engine_accuracy``) and kept small so the module stays quick on two cores.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_engine_accuracy import (
    LABEL_TEXT,
    PAGE_TEXT,
    character_error_rate,
    png_bytes,
    render_label,
    render_page,
    render_text,
    turned,
)

from ocrwatch.engine import (
    Box,
    EngineCrashed,
    EngineInputError,
    EngineOptions,
    EnginePool,
    EngineResult,
    EngineStopped,
    EngineTimeout,
    EngineUnavailable,
    UnsupportedLanguage,
    missing_modules,
    supported_languages,
)


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    with EnginePool(workers=1) as running:
        yield running


def read_label(pool: EnginePool, image: Image.Image, **options: Any) -> EngineResult:
    return pool.recognize(png_bytes(image), EngineOptions(**options))


@pytest.mark.parametrize(
    ("rotate", "transpose"),
    [
        (90, Image.Transpose.ROTATE_90),  # Pillow names the counter-clockwise turn
        (180, Image.Transpose.ROTATE_180),
        (270, Image.Transpose.ROTATE_270),
    ],
)
def test_rotate_by_right_angles_turns_the_page_clockwise_first(
    pool: EnginePool, rotate: int, transpose: Image.Transpose
) -> None:
    label = render_label()
    result = read_label(pool, label.transpose(transpose), rotate_degrees=rotate)
    assert character_error_rate(result.text, LABEL_TEXT) <= 0.02, result.text
    page = result.pages[0]
    assert (page.width_px, page.height_px) == label.size  # boxes refer to the turned page


def test_rotate_by_another_angle_resamples_and_keeps_the_page_geometry(pool: EnginePool) -> None:
    sideways = turned(render_label(), 30.0)  # counter-clockwise; Rotate turns clockwise
    result = read_label(pool, sideways, rotate_degrees=30, skew_correct=False)
    assert character_error_rate(result.text, LABEL_TEXT) <= 0.02, result.text
    page = result.pages[0]
    assert (page.width_px, page.height_px) == sideways.size
    for line in page.lines:
        assert 0 <= line.box.left < line.box.right <= page.width_px
        assert 0 <= line.box.top < line.box.bottom <= page.height_px


def test_preprocessing_switches_keep_the_text(pool: EnginePool) -> None:
    result = read_label(pool, render_label(), binarize=True, contrast_correct=True, upsample=True)
    assert character_error_rate(result.text, LABEL_TEXT) <= 0.02, result.text


def test_upsampling_reads_small_text(pool: EnginePool) -> None:
    text = "Batch 7731 expires 09/2026\nStore below 25 C"
    small = render_text(text, size=(300, 60), font_px=11, origin=(6, 8), spacing=1.6)
    result = read_label(pool, small, upsample=True)
    assert character_error_rate(result.text, text) <= 0.05, result.text


def test_regions_are_read_one_by_one_in_the_order_given(pool: EnginePool) -> None:
    image = render_text(
        "Invoice 4471\n\n\n\nTotal 129.50 EUR",
        size=(640, 420),
        font_px=36,
        origin=(40, 40),
        spacing=1.8,
    )
    top = Box(left=0, top=0, right=640, bottom=120)
    bottom = Box(left=0, top=260, right=640, bottom=420)
    result = read_label(pool, image, regions=(bottom, top))
    lines = result.pages[0].lines
    assert [line.text for line in lines] == ["Total 129.50 EUR", "Invoice 4471"]
    assert bottom.top <= lines[0].box.top and lines[0].box.bottom <= bottom.bottom
    assert lines[1].box.bottom <= top.bottom

    only_top = read_label(pool, image, regions=(top,))
    assert only_top.text == "Invoice 4471"


def test_a_pdf_gives_every_page_in_order(pool: EnginePool) -> None:
    first_text = "First page of the letter\nDated 2 May 2024"
    second_text = "Second page follows\nKind regards, Paul"
    first, second = (
        render_text(text, size=(850, 1100), font_px=30, origin=(80, 100), spacing=1.6)
        for text in (first_text, second_text)
    )
    buffer = io.BytesIO()
    first.save(buffer, format="PDF", save_all=True, append_images=[second], resolution=100.0)
    result = pool.recognize(buffer.getvalue())
    assert len(result.pages) == 2
    assert character_error_rate(result.pages[0].text, first_text) <= 0.02, result.text
    assert character_error_rate(result.pages[1].text, second_text) <= 0.02, result.text
    assert result.text.count("\f") == 1
    assert result.pages[0].width_px > 850  # rendered above the PDF's own 100 dpi


def png_header_only(width: int, height: int, *, colour: bool = False) -> bytes:
    """A PNG that announces ``width`` x ``height`` pixels (1-bit, or 8-bit RGB) and holds
    almost none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    depth, colour_type = (8, 2) if colour else (1, 0)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def pdf_with_a_huge_page() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (100, 100), 255).save(buffer, format="PDF", resolution=0.05)
    return buffer.getvalue()  # a page 2000 inches wide


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_header_only(50_000, 50_000), "too large"),
        # 81 MP: under Pillow's own hard limit, over the engine's for colour (60 MP) ...
        (png_header_only(9_000, 9_000, colour=True), "too large"),
        # ... and within it for a 1-bit page (150 MP), so it is decoded (and found cut short)
        (png_header_only(9_000, 9_000), "cannot be decoded"),
        (pdf_with_a_huge_page(), "too large"),
        (b"this is not an image at all\n" * 100, "not supported or the file is damaged"),
        (png_bytes(render_label())[:400], "cannot be decoded"),
        (b"%PDF-1.4\n" + b"\x00garbage" * 50, "PDF document cannot be read"),
    ],
    ids=[
        "bomb",
        "over-limit",
        "1-bit-within-limit",
        "pdf-bomb",
        "garbage",
        "truncated",
        "broken-pdf",
    ],
)
def test_bad_input_is_a_clear_error_and_the_worker_carries_on(
    pool: EnginePool, data: bytes, message: str
) -> None:
    pids = pool.worker_pids
    with pytest.raises(EngineInputError, match=message):
        pool.recognize(data)
    assert pool.worker_pids == pids  # the same worker, still alive


def test_unsupported_language_is_refused_before_any_work(pool: EnginePool) -> None:
    assert {"English", "German", "French", "Polish", "Chinese"} <= supported_languages()
    assert not {"Russian", "Arabic", "Hindi", "Vietnamese"} & supported_languages()
    with pytest.raises(UnsupportedLanguage, match="Russian"):
        read_label(pool, render_label(), language="Russian")


def test_the_languages_are_the_ones_the_bundled_recogniser_has_characters_for() -> None:
    # The wheel ships no separate dictionary file: the character set is the recognition
    # model's own metadata, which is what RapidOCR decodes with.
    import onnxruntime

    from ocrwatch.engine.reader import bundled_model_paths

    session = onnxruntime.InferenceSession(
        str(bundled_model_paths()["rec"]), providers=["CPUExecutionProvider"]
    )
    characters = set(session.get_modelmeta().custom_metadata_map["character"].splitlines())
    hiragana, katakana = set("あいうえおかきくけこんをゃ"), set("アイウエオカキクケコンヲャー")
    assert hiragana <= characters and katakana <= characters  # so Japanese is read
    assert "Japanese" in supported_languages()
    assert not {chr(c) for c in range(0x0410, 0x0450)} & characters  # no Cyrillic
    assert not {chr(c) for c in range(0xAC00, 0xAC20)} & characters  # no Hangul
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "reads Latin-script languages, Chinese and Japanese" in " ".join(readme.split())


def test_the_worker_runs_with_onnxruntime_telemetry_disabled(pool: EnginePool) -> None:
    (pid,) = pool.worker_pids
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"ORT_DISABLE_TELEMETRY=1" in environment


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_until_busy(pid: int, *, deadline_seconds: float = 60.0) -> None:
    """Poll until the worker has spent a few CPU ticks (it is recognising), then return."""
    start = cpu_ticks(pid)
    deadline = time.monotonic() + deadline_seconds
    while cpu_ticks(pid) < start + 15:
        assert time.monotonic() < deadline, "the worker never got busy"
        time.sleep(0.01)


def recognize_in_background(
    executor: ThreadPoolExecutor, pool: EnginePool, data: bytes
) -> Future[EngineResult]:
    return executor.submit(pool.recognize, data)


def test_a_killed_worker_fails_only_its_file_and_is_replaced(pool: EnginePool) -> None:
    (pid,) = pool.worker_pids
    with ThreadPoolExecutor(max_workers=1) as executor:
        pending = recognize_in_background(executor, pool, png_bytes(render_page()))
        wait_until_busy(pid)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineCrashed, match="signal 9"):
            pending.result(timeout=60)
    result = read_label(pool, render_label())
    assert character_error_rate(result.text, LABEL_TEXT) <= 0.02
    assert pool.worker_pids != (pid,)


def test_a_page_over_the_timeout_fails_and_the_next_file_works(pool: EnginePool) -> None:
    (pid,) = pool.worker_pids
    normal_timeout = pool.page_timeout_seconds
    pool.page_timeout_seconds = 0.01
    try:
        with pytest.raises(EngineTimeout, match="restarted"):
            pool.recognize(png_bytes(render_page()))
    finally:
        pool.page_timeout_seconds = normal_timeout
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    result = read_label(pool, render_label())
    assert character_error_rate(result.text, LABEL_TEXT) <= 0.02


def test_stopping_the_pool_ends_a_recognition_in_progress_and_every_worker() -> None:
    engine = EnginePool(workers=1)
    engine.start()
    (pid,) = engine.worker_pids
    with ThreadPoolExecutor(max_workers=1) as executor:
        pending = recognize_in_background(executor, engine, png_bytes(render_page()))
        wait_until_busy(pid)
        engine.stop()
        with pytest.raises(EngineStopped):
            pending.result(timeout=60)
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(EngineStopped):
        engine.recognize(png_bytes(render_label()))


def test_a_missing_engine_is_reported_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker inherits PYTHONPATH: a rapidocr that cannot be imported stands in for none.
    (tmp_path / "rapidocr.py").write_text('raise ImportError("No module named rapidocr")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    engine = EnginePool(workers=1)
    with pytest.raises(EngineUnavailable, match="cannot start: ImportError"):
        engine.start()
    assert engine.worker_pids == ()
    assert missing_modules() == ()  # the real packages are there: only the worker was fooled


def test_several_workers_serve_several_callers_at_once() -> None:
    label = png_bytes(render_label())
    with EnginePool(workers=2, threads_per_worker=1) as two:
        assert len(set(two.worker_pids)) == 2
        with ThreadPoolExecutor(max_workers=4) as executor:
            results = list(executor.map(lambda _: two.recognize(label), range(4)))
    assert all(character_error_rate(result.text, LABEL_TEXT) <= 0.02 for result in results)


def test_the_page_text_is_the_known_page(pool: EnginePool) -> None:
    """A smoke check that a full page still reads after the workers were replaced above."""
    result = pool.recognize(png_bytes(render_page()), EngineOptions(skew_correct=False))
    assert character_error_rate(result.text, PAGE_TEXT) <= 0.02
