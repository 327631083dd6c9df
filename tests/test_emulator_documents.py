"""Reading submitted documents: formats, embedded ground truth, PDF structure, limits."""

from __future__ import annotations

import io
from collections.abc import Callable

import pikepdf
import pytest
from PIL import Image

from ocrwatch.emulator import samples
from ocrwatch.emulator.document import DocumentError, load_document, rotate_document
from ocrwatch.emulator.pdfpages import PdfError, read_pdf

LIMIT = 100_000_000


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (samples.make_png, "PNG"),
        (samples.make_jpeg, "JPEG"),
        (samples.make_gif, "GIF"),
        (samples.make_tiff, "TIFF"),
        (samples.make_bmp, "BMP"),
    ],
)
def test_samples_load_with_their_text_and_size(make: Callable[..., bytes], kind: str) -> None:
    text = "Ünïcode line ✓\nsecond"
    document = load_document(make(text, width=320, height=200), max_pixels=LIMIT)
    assert document.format == kind
    assert (document.pages[0].width_px, document.pages[0].height_px) == (320, 200)
    assert document.embedded_text == (None if kind == "BMP" else text)


def test_samples_actually_show_the_text() -> None:
    image = Image.open(io.BytesIO(samples.make_png("dark ink")))
    assert image.convert("L").getextrema()[0] < 128  # something was drawn
    blank = Image.open(io.BytesIO(samples.make_png("")))
    assert blank.convert("L").getextrema() == (255, 255)


def test_multi_page_samples() -> None:
    tiff = Image.open(io.BytesIO(samples.make_tiff(["one", "two", "three"])))
    assert getattr(tiff, "n_frames", 1) == 3
    info = read_pdf(samples.make_pdf(["one", "twö ✓ č"], width=300, height=150), max_pixels=LIMIT)
    assert info.subject == "one\ftwö ✓ č"  # č is bytes 01 0D in UTF-16
    assert [p.ref.shown_size_pt for p in info.pages] == [(300.0, 150.0)] * 2
    # one pixel per point: the pages' images are 300x150 pixels at 72 dpi
    assert [(p.width_px, p.height_px) for p in info.pages] == [(300, 150)] * 2


def test_pdf_pages_show_their_image_when_rendered() -> None:
    document = load_document(samples.make_pdf(["a", "b"], width=300, height=150), max_pixels=LIMIT)
    assert document.format == "PDF"
    images = [page.pixels() for page in document.pages]
    assert [None if image is None else image.size for image in images] == [(300, 150)] * 2
    assert document.embedded_text == "a\fb"


def _object_stream_pdf() -> bytes:
    """A PDF 1.5 whose objects live in compressed object streams, with an XRef stream."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(100, 50))
    pdf.docinfo["/Subject"] = "(literal) AB text"
    buffer = io.BytesIO()
    pdf.save(buffer, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    data = buffer.getvalue()
    assert b"/ObjStm" in data
    return data


def test_pdf_reader_handles_object_streams() -> None:
    info = read_pdf(_object_stream_pdf(), max_pixels=LIMIT)
    assert info.subject == "(literal) AB text"
    # no image: the page gets a grid of 150 dpi
    assert [(p.ref.shown_size_pt, p.width_px, p.height_px) for p in info.pages] == [
        ((100.0, 50.0), 208, 104)
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\ngarbage without objects\n%%EOF",
        b"%PDF-1.4\n1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\ntrailer <</Root 1 0 R"
        b"/Encrypt 5 0 R>>\n%%EOF",
        b"not a pdf at all",
    ],
    ids=["no-pages", "encrypted", "not-pdf"],
)
def test_unusable_pdfs_are_refused(data: bytes) -> None:
    with pytest.raises(PdfError):
        read_pdf(data, max_pixels=LIMIT)
    with pytest.raises(DocumentError):
        load_document(data, max_pixels=LIMIT)


def test_pillow_bomb_warning_never_surfaces() -> None:
    # 90 Mpx is over Pillow's warning threshold but under the emulator's limit: the emulator's
    # own limit decides, and the truncated data is what fails.
    bomb = samples.make_bomb_png(width=10_000, height=9_000)
    with pytest.raises(DocumentError) as failure:
        load_document(bomb, max_pixels=LIMIT)
    assert "too large" not in str(failure.value)


def test_pixel_limit_and_pillow_hard_limit() -> None:
    with pytest.raises(DocumentError, match="too large"):
        load_document(samples.make_bomb_png(width=2_000, height=2_000), max_pixels=1_000_000)
    with pytest.raises(DocumentError, match="too large"):
        load_document(samples.make_bomb_png(), max_pixels=10**12)


def test_unsupported_formats_are_refused() -> None:
    image = Image.new("L", (10, 10))
    buffer = io.BytesIO()
    image.save(buffer, "PPM")
    with pytest.raises(DocumentError, match="not supported"):
        load_document(buffer.getvalue(), max_pixels=LIMIT)
    with pytest.raises(DocumentError, match="not supported"):
        load_document(b"<svg xmlns='http://www.w3.org/2000/svg'/>", max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("degrees", "size"), [(90, (200, 320)), (180, (320, 200)), (-90, (200, 320)), (45, (320, 200))]
)
def test_rotation_turns_the_page_geometry(degrees: int, size: tuple[int, int]) -> None:
    document = load_document(samples.make_png("x", width=320, height=200), max_pixels=LIMIT)
    page = rotate_document(document, degrees).pages[0]
    assert (page.width_px, page.height_px) == size
    assert page.image is not None
    assert page.image.size == size
