"""Sidecar bytes from task results: text sidecars are POSIX text files (they end with a newline)."""

from __future__ import annotations

import pytest

from ocrwatch.model import Rect, Region, ResultFile, ResultFormat
from ocrwatch.sidecars import compose

_RECT = Rect(0, 0, 10, 10)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([b"one line"], b"one line\n"),
        ([b"already ends\n"], b"already ends\n"),
        ([b"page one", b"page two"], b"page one\n\fpage two\n"),
        ([b"two\nlines"], b"two\nlines\n"),
    ],
)
def test_a_text_sidecar_ends_with_exactly_one_newline(parts: list[bytes], expected: bytes) -> None:
    results = [ResultFile("Text", part) for part in parts]
    (sidecar,) = compose(results, formats=[ResultFormat.TEXT])
    assert sidecar.data == expected


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([b"12.50 EUR\fSecond page"], b"12.50 EUR\n\fSecond page\n"),  # one result, two pages
        ([b"ends\n\fnext\n"], b"ends\n\fnext\n"),  # already pdftotext's way: unchanged
        ([b"a\f\fc"], b"a\n\f\fc\n"),  # a blank page stays an empty page
        ([b"a\fb", b"c"], b"a\n\fb\n\fc\n"),  # pages from several parts
    ],
)
def test_each_page_of_a_text_sidecar_ends_its_last_line_before_the_form_feed(
    parts: list[bytes], expected: bytes
) -> None:
    """pdftotext's convention: grep and ``wc -l`` never see two pages' lines as one."""
    results = [ResultFile("Text", part) for part in parts]
    (sidecar,) = compose(results, formats=[ResultFormat.TEXT])
    assert sidecar.data == expected


def test_region_texts_end_with_a_newline_too() -> None:
    results = [ResultFile("Text", b"top"), ResultFile("Text", b"bottom")]
    regions = [
        Region(rect=_RECT, name="Header", order=0),
        Region(rect=_RECT, name="Footer", order=1),
    ]
    (sidecar,) = compose(results, formats=[ResultFormat.TEXT], regions=regions)
    assert sidecar.data == b"## Header\ntop\n\n## Footer\nbottom\n"


def test_binary_and_json_sidecars_are_left_as_the_service_sent_them() -> None:
    results = [ResultFile("Pdf", b"%PDF-1.7 bytes"), ResultFile("JSON", b'[{"a": 1}]')]
    sidecars = compose(results, formats=[ResultFormat.PDF, ResultFormat.JSON])
    assert [s.data for s in sidecars] == [b"%PDF-1.7 bytes", b'[{"a": 1}]']


_PAGE_ABOUT_PDF = b"%PDF-1.7 is the header line of every PDF file.\nIt names the version."
_A_PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    "formats", [[ResultFormat.TEXT], [ResultFormat.TEXT, ResultFormat.PDF]], ids=["text", "both"]
)
def test_recognised_text_that_starts_like_a_pdf_is_still_the_text(
    formats: list[ResultFormat],
) -> None:
    # A scanned page about PDF files: its text begins with the PDF magic, but it is text.
    results = [ResultFile("Text", _PAGE_ABOUT_PDF)]
    if ResultFormat.PDF in formats:
        results.append(ResultFile("Pdf", _A_PDF))
    by_format = {s.format: s.data for s in compose(results, formats=formats)}
    assert by_format[ResultFormat.TEXT] == _PAGE_ABOUT_PDF + b"\n"
    if ResultFormat.PDF in formats:
        assert by_format[ResultFormat.PDF] == _A_PDF


def test_a_pdf_whatever_its_type_string_is_the_pdf() -> None:
    results = [ResultFile("Text", b"the text"), ResultFile("Other", _A_PDF)]
    sidecars = compose(results, formats=[ResultFormat.TEXT, ResultFormat.PDF])
    assert [(s.format, s.data) for s in sidecars] == [
        (ResultFormat.TEXT, b"the text\n"),
        (ResultFormat.PDF, _A_PDF),
    ]
