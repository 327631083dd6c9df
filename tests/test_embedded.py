"""The embedded service end to end: the real client, over real HTTP, reading with the engine.

One service per module (starting the engine loads its models); each test talks to it through
``ocrwatch.aspose.OcrClient`` exactly as the daemon does, with the service's credentials.
"""

from __future__ import annotations

import importlib.metadata
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops
from test_emulator_pdf import assert_fonts_embedded, line_centres, render_pages
from test_engine_accuracy import (
    LABEL_TEXT,
    character_error_rate,
    png_bytes,
    render_label,
    render_text,
)

from ocrwatch.aspose import OcrClient
from ocrwatch.embedded import EmbeddedService, supported_languages
from ocrwatch.errors import AuthenticationError
from ocrwatch.model import (
    Credentials,
    Mode,
    RecognitionSettings,
    Rect,
    Region,
    ResultType,
    TaskResult,
    TaskStatus,
)


@pytest.fixture(scope="module")
def service() -> Iterator[EmbeddedService]:
    with EmbeddedService(workers=1) as running:
        yield running


@pytest.fixture
def client(service: EmbeddedService) -> Iterator[OcrClient]:
    with OcrClient(service.base_url, credentials=service.credentials) as connected:
        yield connected


def run_task(
    client: OcrClient, mode: Mode, data: bytes, settings: RecognitionSettings
) -> TaskResult:
    """Submit, then poll until the task is finished or the deadline passes."""
    task_id = client.submit(mode, data, settings)
    deadline = time.monotonic() + 120.0
    while True:
        result = client.fetch(task_id, mode=mode)
        if result.task_status in (TaskStatus.COMPLETED, TaskStatus.ERROR):
            return result
        assert time.monotonic() < deadline, f"task {task_id} still {result.task_status}"
        time.sleep(0.05)


def test_the_service_listens_on_loopback_with_fresh_credentials(
    service: EmbeddedService,
) -> None:
    assert service.base_url.startswith("http://127.0.0.1:")
    assert len(service.credentials.client_secret) >= 32
    assert "English" in service.supported_languages()
    assert service.supported_languages() == supported_languages()


def test_a_png_comes_back_as_its_text(client: OcrClient) -> None:
    result = run_task(client, Mode.IMAGE, png_bytes(render_label()), RecognitionSettings())
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    (text_file,) = result.results
    assert text_file.type == "Text"
    assert character_error_rate(text_file.data.decode("utf-8"), LABEL_TEXT) <= 0.02


def test_regions_come_back_one_result_each_in_their_order(client: OcrClient) -> None:
    image = render_text(
        "Invoice 4471\n\n\n\nTotal 129.50 EUR",
        size=(640, 420),
        font_px=36,
        origin=(40, 40),
        spacing=1.8,
    )
    settings = RecognitionSettings(
        regions=(
            Region(rect=Rect(0, 0, 640, 120), order=2),
            Region(rect=Rect(0, 260, 640, 420), order=1),
        )
    )
    result = run_task(client, Mode.REGIONS, png_bytes(image), settings)
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    texts = [item.data.decode("utf-8").strip() for item in result.results]
    assert texts == ["Total 129.50 EUR", "Invoice 4471"]


def test_a_pdf_gives_every_page_with_boxes_on_the_emulators_pages(client: OcrClient) -> None:
    first_text, second_text = "Delivery note 88\nTwo boxes of paper", "Signed on receipt"
    first, second = (
        render_text(text, size=(850, 1100), font_px=30, origin=(80, 100), spacing=1.6)
        for text in (first_text, second_text)
    )
    buffer = io.BytesIO()
    first.save(buffer, format="PDF", save_all=True, append_images=[second], resolution=100.0)
    settings = RecognitionSettings(result_type=ResultType.TEXT_AND_HOCR)
    result = run_task(client, Mode.PDF, buffer.getvalue(), settings)
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    by_type = {item.type: item.data.decode("utf-8") for item in result.results}
    pages = by_type["Text"].split("\f")
    assert len(pages) == 2
    assert character_error_rate(pages[0], first_text) <= 0.02, by_type["Text"]
    assert character_error_rate(pages[1], second_text) <= 0.02, by_type["Text"]
    # The PDF's pages are 850x1100 pixel images; the engine read them rendered larger.
    assert "bbox 0 0 850 1100" in by_type["Hocr"]
    # The hOCR names the engine that read it, not the emulator that stands in for the cloud.
    rapidocr = importlib.metadata.version("rapidocr")
    assert (
        f'<meta name="ocr-system" content="ocrwatch embedded engine (RapidOCR {rapidocr})"/>'
        in by_type["Hocr"]
    )


def test_a_file_the_engine_cannot_read_ends_its_task_in_error(client: OcrClient) -> None:
    garbage = b"GIF89a" + b"\xff" * 200
    result = run_task(client, Mode.IMAGE, garbage, RecognitionSettings())
    assert result.task_status is TaskStatus.ERROR
    assert result.messages


def test_other_credentials_are_refused(service: EmbeddedService) -> None:
    wrong = Credentials(client_id=service.credentials.client_id, client_secret="not-the-secret")
    with (
        OcrClient(service.base_url, credentials=wrong) as stranger,
        pytest.raises(AuthenticationError),
    ):
        stranger.submit(Mode.IMAGE, png_bytes(render_label()), RecognitionSettings())


def test_stopping_ends_the_server_and_every_worker() -> None:
    embedded = EmbeddedService(workers=1)
    with embedded:
        pids = embedded.pool.worker_pids
        assert pids
        base_url = embedded.base_url
    assert not embedded.is_running
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    with pytest.raises(RuntimeError):
        _ = embedded.base_url
    with (
        OcrClient(base_url, credentials=Credentials("x", "y")) as late,
        pytest.raises(Exception, match=r"(?i)connect|unavailable|refused"),
    ):
        late.submit(Mode.IMAGE, png_bytes(render_label()), RecognitionSettings())


PDF_TEXT = "Delivery note 88\nTwo boxes of paper\nSigned on receipt"


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
def test_a_searchable_pdf_has_the_engines_lines_on_their_ink(
    client: OcrClient, mode: str, rotate: int
) -> None:
    """Scanned pages as scanners store them (a 1-bit CCITT page, a greyscale page stored
    sideways and shown upright by ``/Rotate 90``): the output's pages render as the input's
    did, and each recognised line is in the invisible layer over the ink it was read from."""
    page = render_text(
        PDF_TEXT, size=(850, 1100), font_px=30, origin=(80, 100), spacing=1.6
    ).convert(mode)
    original = scanned_pdf(page, rotate=rotate)
    settings = RecognitionSettings(result_type=ResultType.TEXT_AND_PDF)
    result = run_task(client, Mode.PDF, original, settings)
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    by_type = {item.type: item.data for item in result.results}
    recognised = by_type["Text"].decode("utf-8")
    assert character_error_rate(recognised, PDF_TEXT) <= 0.02, recognised

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


def test_a_jpeg_turned_by_exif_gives_a_searchable_page_upright_with_lines_on_their_ink(
    client: OcrClient,
) -> None:
    # A phone's portrait photo: the pixels stored sideways, EXIF orientation 6 stands them up.
    page = render_text(PDF_TEXT, size=(850, 1100), font_px=30, origin=(80, 100), spacing=1.6)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    page.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(
        buffer, "JPEG", quality=90, exif=exif, dpi=(100, 100)
    )
    settings = RecognitionSettings(result_type=ResultType.TEXT_AND_PDF)
    result = run_task(client, Mode.IMAGE, buffer.getvalue(), settings)
    assert result.task_status is TaskStatus.COMPLETED, result.messages
    by_type = {item.type: item.data for item in result.results}
    recognised = by_type["Text"].decode("utf-8")
    assert character_error_rate(recognised, PDF_TEXT) <= 0.02, recognised
    output = by_type["Pdf"]
    [shown] = render_pages(output)
    assert shown.width < shown.height  # upright, as a viewer shows the photo
    bands = ink_rows(shown)
    assert len(bands) == 3
    for line, band in zip(recognised.split("\n"), bands, strict=True):
        [(x, y)] = line_centres(output, line)
        assert abs(y - band) < 0.02, (line, y, band)
        assert 0.08 < x < 0.5, (line, x)
