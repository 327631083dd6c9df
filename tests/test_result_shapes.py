"""The service's result answers as they really come: any ``type`` string, JSON objects, pages apart.

The pure part (``sidecars.compose``) is checked on its own; the rest runs the daemon against
the emulator over real HTTP, shaped by ``ResultShape`` the way a real service may answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from daemon_harness import run_until, running_service, write_config

from ocrwatch import sidecars
from ocrwatch.emulator import Emulator, ResultShape
from ocrwatch.emulator.samples import make_pdf, make_png
from ocrwatch.errors import PermanentError
from ocrwatch.model import JobState, ResultFile, ResultFormat

MakeEmulator = Callable[..., Emulator]
BLOCKS = b'[{"page": 1, "text": "total 12.50"}]'
INVOICE = b'{"total_amount": 12.5, "currency": "EUR"}'


def _hocr_page(number: int, words: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">\n'
        "<head><title></title></head>\n<body>\n"
        f'<div class="ocr_page" id="page_1" title="bbox 0 0 100 50; ppageno 0">'
        f'<span class="ocr_line" id="line_1_1"><span class="ocrx_word" id="word_1_1_1">'
        f"{words}</span></span></div>\n</body>\n</html>\n"
    ).encode()


def _pdf_text(data: bytes) -> list[str]:
    document = pdfium.PdfDocument(data)
    try:
        return [document[i].get_textpage().get_text_range().strip() for i in range(len(document))]
    finally:
        document.close()


# ----------------------------------------------------------------------------- pure


@pytest.mark.parametrize("type_name", ["JSON", "Text", "Other", "", "json"])
@pytest.mark.parametrize("payload", [BLOCKS, INVOICE], ids=["array", "object"])
def test_the_requested_json_is_accepted_whatever_its_type_string(
    type_name: str, payload: bytes
) -> None:
    [sidecar] = sidecars.compose([ResultFile(type_name, payload)], formats=[ResultFormat.JSON])
    assert sidecar.format is ResultFormat.JSON
    assert json.loads(sidecar.data) == json.loads(payload)


def test_text_that_is_not_a_json_document_is_not_taken_for_the_requested_json() -> None:
    with pytest.raises(PermanentError, match="expected JSON"):
        sidecars.compose([ResultFile("Text", b"just words")], formats=[ResultFormat.JSON])
    with pytest.raises(PermanentError, match="not a JSON document"):
        sidecars.compose([ResultFile("JSON", b"12")], formats=[ResultFormat.JSON])


def test_text_with_an_unknown_type_string_is_the_requested_text() -> None:
    [sidecar] = sidecars.compose([ResultFile("Other", b"hello")], formats=[ResultFormat.TEXT])
    assert sidecar.data == b"hello\n"


def test_combined_results_are_told_apart_by_content_when_the_types_mislead() -> None:
    pdf = make_pdf(["one"])
    results = [
        ResultFile("Text", pdf),
        ResultFile("Other", _hocr_page(1, "w")),
        ResultFile("Text", b"t"),
    ]
    got = {
        s.format: s.data
        for s in sidecars.compose(
            results, formats=[ResultFormat.TEXT, ResultFormat.PDF, ResultFormat.HOCR]
        )
    }
    assert got[ResultFormat.PDF] == pdf
    assert got[ResultFormat.TEXT] == b"t\n"
    assert b"ocr_page" in got[ResultFormat.HOCR]


def test_one_pdf_per_page_is_joined_into_one_document_in_order() -> None:
    parts = [make_pdf(["first page"]), make_pdf(["second page"]), make_pdf(["third page"])]
    [sidecar] = sidecars.compose(
        [ResultFile("Pdf", part) for part in parts], formats=[ResultFormat.PDF]
    )
    with pikepdf.open(io.BytesIO(sidecar.data)) as joined:
        assert len(joined.pages) == 3


def test_a_broken_pdf_part_fails_the_join_clearly() -> None:
    with pytest.raises(PermanentError, match="cannot join"):
        sidecars.compose(
            [ResultFile("Pdf", make_pdf(["ok"])), ResultFile("Pdf", b"%PDF-1.4 broken")],
            formats=[ResultFormat.PDF],
        )


def test_one_hocr_per_page_is_joined_with_unique_ids_and_page_numbers() -> None:
    parts = [_hocr_page(1, "alpha"), _hocr_page(2, "beta"), _hocr_page(3, "gamma")]
    [sidecar] = sidecars.compose(
        [ResultFile("Hocr", part) for part in parts], formats=[ResultFormat.HOCR]
    )
    text = sidecar.data.decode()
    assert text.count('class="ocr_page"') == 3
    assert text.index("alpha") < text.index("beta") < text.index("gamma")
    assert [f"ppageno {n}" in text for n in range(3)] == [True, True, True]
    ids = [chunk.split('"', 1)[0] for chunk in text.split(' id="')[1:]]
    assert len(ids) == len(set(ids)) == 9
    assert text.count("<body>") == 1 and text.count("</html>") == 1


# ----------------------------------------------------------------------------- emulator


def test_the_emulator_answers_in_the_shapes_it_is_given(
    make_emulator: MakeEmulator, emulator_api: Callable[[Emulator], object]
) -> None:
    shape = ResultShape(
        type_names=((ResultFormat.JSON, "Text"),), json_object=True, pages_apart=True
    )
    api = emulator_api(make_emulator(result_shape=shape))
    [(json_type, json_data)] = api.recognize(  # type: ignore[attr-defined]
        "RecognizeImage", make_png("shaped"), {"resultType": "JSON"}
    )
    assert json_type == "Text"
    assert "shaped" in json.dumps(json.loads(json_data)["blocks"])
    results = api.recognize(  # type: ignore[attr-defined]
        "RecognizePdf", make_pdf(["one", "two"]), {"resultType": "PdfAndHocr"}
    )
    assert [kind for kind, _ in results] == ["Pdf", "Pdf", "Hocr", "Hocr"]


# ----------------------------------------------------------------------------- daemon


def _run_inbox(
    tmp_path: Path, emulator: Emulator, name: str, data: bytes, types: list[str]
) -> Path:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "scans", "path": "inbox", "error_dir": "errors", "result_types": types}],
    )
    (tmp_path / "inbox" / name).write_bytes(data)
    with running_service(config) as (service, store, _):
        run_until(service, service.is_idle)
        assert store.count_by_state().get(JobState.DONE) == 1, service.status_line()
    assert not (tmp_path / "errors").exists() or not any((tmp_path / "errors").iterdir())
    return tmp_path / "inbox"


@pytest.mark.parametrize("type_name", ["Text", "Other"])
@pytest.mark.parametrize("as_object", [False, True], ids=["array", "object"])
def test_the_daemon_writes_json_sent_under_another_type_or_as_an_object(
    tmp_path: Path, make_emulator: MakeEmulator, type_name: str, as_object: bool
) -> None:
    shape = ResultShape(type_names=((ResultFormat.JSON, type_name),), json_object=as_object)
    inbox = _run_inbox(
        tmp_path, make_emulator(result_shape=shape), "s.png", make_png("odd json"), ["json"]
    )
    document = json.loads((inbox / "s.png.json").read_text())
    assert isinstance(document, dict) is as_object
    assert "odd json" in json.dumps(document)


def test_the_daemon_joins_a_pdf_and_hocr_sent_one_per_page(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(result_shape=ResultShape(pages_apart=True))
    pages = ["page one words", "page two words", "page three words"]
    inbox = _run_inbox(tmp_path, emulator, "b.pdf", make_pdf(pages), ["text", "pdf", "hocr"])
    assert _pdf_text((inbox / "b.pdf.pdf").read_bytes()) == pages
    hocr = (inbox / "b.pdf.hocr").read_text()
    assert hocr.count('class="ocr_page"') == 3
    assert hocr.index("one") < hocr.index("two") < hocr.index("three")
    assert (inbox / "b.pdf.txt").read_text() == "\n\f".join(pages) + "\n"
