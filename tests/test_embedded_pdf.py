"""Searchable PDFs from the embedded service: the engine's words land on the scanned ink.

Scanned pages as scanners store them (a 1-bit CCITT page, a greyscale page stored sideways
and shown upright by ``/Rotate 90``) go through the real client, the embedded service and the
local engine with ``TextAndPdf``. The output's pages must render as the input's did, and each
recognised line must be found in the invisible layer over the ink of the line it was read from.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pikepdf
import pytest
from PIL import Image, ImageChops
from test_emulator_pdf import assert_fonts_embedded, line_centres, render_pages
from test_engine_accuracy import character_error_rate, render_text

from ocrwatch.aspose import OcrClient
from ocrwatch.embedded import EmbeddedService
from ocrwatch.model import Mode, RecognitionSettings, ResultType, TaskResult, TaskStatus

TEXT = "Delivery note 88\nTwo boxes of paper\nSigned on receipt"
SIZE = (850, 1100)  # pixels at 100 dpi: a Letter page


@pytest.fixture(scope="module")
def service() -> Iterator[EmbeddedService]:
    with EmbeddedService(workers=1) as running:
        yield running


@pytest.fixture
def client(service: EmbeddedService) -> Iterator[OcrClient]:
    with OcrClient(service.base_url, credentials=service.credentials) as connected:
        yield connected


def run_task(client: OcrClient, data: bytes) -> TaskResult:
    task_id = client.submit(
        Mode.PDF, data, RecognitionSettings(result_type=ResultType.TEXT_AND_PDF)
    )
    deadline = time.monotonic() + 120.0
    while True:
        result = client.fetch(task_id, mode=Mode.PDF)
        if result.task_status in (TaskStatus.COMPLETED, TaskStatus.ERROR):
            return result
        assert time.monotonic() < deadline, f"task {task_id} still {result.task_status}"
        time.sleep(0.05)


def scanned_pdf(page: Image.Image, *, rotate: int) -> bytes:
    """``page`` stored turned back by ``rotate`` degrees, with ``/Rotate`` showing it upright."""
    stored = page.rotate(rotate, expand=True) if rotate else page
    buffer = io.BytesIO()
    stored.save(buffer, "PDF", resolution=100.0)
    if not rotate:
        return buffer.getvalue()
    with pikepdf.open(io.BytesIO(buffer.getvalue())) as pdf:
        pdf.pages[0].Rotate = rotate
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def ink_rows(page: Image.Image) -> list[float]:
    """The vertical centre of each band of inked rows, as fractions of the page height."""
    grey = page.convert("L")
    inked = [grey.crop((0, y, grey.width, y + 1)).getextrema()[0] < 128 for y in range(grey.height)]
    bands, start = [], None
    for y, has_ink in enumerate([*inked, False]):
        if has_ink and start is None:
            start = y
        elif not has_ink and start is not None:
            bands.append((start + y) / 2 / grey.height)
            start = None
    return bands


@pytest.mark.parametrize(
    ("mode", "rotate"), [("1", 0), ("L", 90)], ids=["ccitt-g4", "grey-rotate-90"]
)
def test_the_engines_lines_land_on_their_ink(client: OcrClient, mode: str, rotate: int) -> None:
    page = render_text(TEXT, size=SIZE, font_px=30, origin=(80, 100), spacing=1.6).convert(mode)
    original = scanned_pdf(page, rotate=rotate)
    result = run_task(client, original)
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    by_type = {item.type: item.data for item in result.results}
    recognised = by_type["Text"].decode("utf-8")
    assert character_error_rate(recognised, TEXT) <= 0.02, recognised

    output = by_type["Pdf"]
    [before], [after] = render_pages(original), render_pages(output)
    assert ImageChops.difference(before, after).getbbox() is None
    assert len(output) < len(original) + 6_000
    assert_fonts_embedded(output)

    bands = ink_rows(after)  # three bands of rows: the page is shown upright
    assert len(bands) == 3
    for line, band in zip(recognised.split("\n"), bands, strict=True):
        [(x, y)] = line_centres(output, line)
        assert abs(y - band) < 0.02, (line, y, band)
        assert 0.08 < x < 0.5, (line, x)  # the lines start 80 px in, and are short
