"""What the emulator recognises and how it renders it: every result type, regions, failures."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pikepdf
import pytest
from conftest import EmulatorApi
from PIL import Image
from test_emulator_pdf import assert_fonts_embedded, text_centres

from ocrwatch.emulator import Box, Emulator, Line, PageText, Recognition, samples
from ocrwatch.emulator.document import Document, DocumentError
from ocrwatch.emulator.recognizer import derived_text
from ocrwatch.model import RecognitionSettings

ApiFactory = Callable[[Emulator], EmulatorApi]
TEXT = "The quick brown fox\njumps over\nthe lazy dög"
PNG = samples.make_png(TEXT)
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture
def api(emulator: Emulator, emulator_api: ApiFactory) -> EmulatorApi:
    return emulator_api(emulator)


def _error_of(api: EmulatorApi, resource: str, data: bytes, settings: dict[str, object]) -> str:
    body = api.wait(resource, api.submit(resource, data, settings))
    assert (body["taskStatus"], body["responseStatusCode"], body["results"]) == (
        "Error",
        "Error",
        None,
    )
    assert set(body["error"]) == {"messages", "warnings"}
    message: str = body["error"]["messages"][0]
    return message


def pdf_text_layer(pdf: bytes) -> list[str]:
    """The text pdfium extracts from every page, split into the lines the layer drew."""
    with pikepdf.open(io.BytesIO(pdf)) as document:
        count = len(document.pages)
    return [
        line for index in range(count) for line in text_centres(pdf, index)[0].split("  ") if line
    ]


def assert_valid_pdf(pdf: bytes, *, pages: int) -> None:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert len(document.pages) == pages
        assert document.check_pdf_syntax() == []  # qpdf finds nothing wrong with it
    assert_fonts_embedded(pdf)


@pytest.mark.parametrize(
    "make", [samples.make_png, samples.make_jpeg, samples.make_gif, samples.make_tiff]
)
def test_embedded_text_comes_back_from_every_image_format(
    api: EmulatorApi, make: Callable[[str], bytes]
) -> None:
    results = api.recognize("RecognizeImage", make(TEXT), {"resultType": "Text"})
    assert results == [("Text", TEXT.encode())]


def test_bmp_without_metadata_gets_a_stable_derived_text(api: EmulatorApi) -> None:
    bmp = samples.make_bmp("anything")
    first = api.recognize("RecognizeImage", bmp)
    assert first == api.recognize("RecognizeImage", bmp)
    text = first[0][1].decode()
    assert len(text.split("\n")) == 3
    assert text != api.recognize("RecognizeImage", samples.make_bmp("other"))[0][1].decode()


def test_hocr_is_xhtml_with_pages_lines_and_word_boxes(api: EmulatorApi) -> None:
    [(kind, data)] = api.recognize("RecognizeImage", PNG, {"resultType": "Hocr"})
    assert kind == "Hocr"
    root = ET.fromstring(data)
    spans = {
        cls: root.findall(f".//*[@class='{cls}']") for cls in ("ocr_page", "ocr_line", "ocrx_word")
    }
    assert spans["ocr_page"][0].get("title", "").startswith("bbox 0 0 800 600")
    assert len(spans["ocr_line"]) == 3
    assert [w.text for w in spans["ocrx_word"]] == TEXT.split()
    first_line = spans["ocr_line"][0].get("title")
    assert first_line == "bbox 0 0 800 200"
    for word in spans["ocrx_word"]:
        assert re.match(r"bbox \d+ \d+ \d+ \d+", word.get("title", ""))
    assert root.tag == f"{XHTML}html"


def test_json_is_an_array_of_blocks_with_corners_and_text(api: EmulatorApi) -> None:
    [(kind, data)] = api.recognize("RecognizeImage", PNG, {"resultType": "JSON"})
    assert kind == "JSON"
    blocks = json.loads(data)
    assert [b["text"] for b in blocks] == TEXT.split("\n")
    assert blocks[1] == {
        "page": 1,
        "topLeftX": 0,
        "topLeftY": 200,
        "bottomRightX": 800,
        "bottomRightY": 400,
        "text": "jumps over",
    }


def test_pdf_is_searchable_with_the_image_and_invisible_text(api: EmulatorApi) -> None:
    [(kind, data)] = api.recognize("RecognizeImage", PNG, {"resultType": "Pdf"})
    assert kind == "Pdf"
    assert_valid_pdf(data, pages=1)
    assert pdf_text_layer(data) == TEXT.split("\n")


@pytest.mark.parametrize(
    ("result_type", "types"),
    [
        ("TextAndPdf", ["Text", "Pdf"]),
        ("TextAndHocr", ["Text", "Hocr"]),
        ("PdfAndHocr", ["Pdf", "Hocr"]),
        ("TextAndPdfAndHocr", ["Text", "Pdf", "Hocr"]),
    ],
)
def test_combined_result_types_give_one_entry_per_format_in_order(
    api: EmulatorApi, result_type: str, types: list[str]
) -> None:
    results = api.recognize("RecognizeImage", PNG, {"resultType": result_type})
    assert [kind for kind, _ in results] == types
    by_type = dict(results)
    if "Text" in by_type:
        assert by_type["Text"] == TEXT.encode()
    if "Pdf" in by_type:
        assert pdf_text_layer(by_type["Pdf"]) == TEXT.split("\n")
    if "Hocr" in by_type:
        ET.fromstring(by_type["Hocr"])


def test_image_png_result_is_the_page_image(api: EmulatorApi) -> None:
    [(kind, data)] = api.recognize("RecognizeImage", PNG, {"resultType": "ImagePNG"})
    assert kind == "ImagePNG"
    assert Image.open(io.BytesIO(data)).size == (800, 600)


def test_label_resource_recognises_like_image(api: EmulatorApi) -> None:
    assert api.recognize("RecognizeLabel", PNG) == [("Text", TEXT.encode())]


def test_regions_give_one_entry_per_region_sorted_by_order(api: EmulatorApi) -> None:
    settings = {
        "resultType": "Text",
        "regions": [
            {
                "order": 2,
                "rect": {"topLeftX": 0, "topLeftY": 0, "bottomRightX": 800, "bottomRightY": 200},
            },
            {"order": 1, "rect": {"topLeftY": 200, "bottomRightX": 800, "bottomRightY": 600}},
            {"rect": {"topLeftX": 10, "topLeftY": 380, "bottomRightX": 790, "bottomRightY": 600}},
        ],
    }
    results = api.recognize("RecognizeRegions", PNG, settings)
    assert results == [
        ("Text", b"the lazy d\xc3\xb6g"),  # order 0 (omitted, as .NET does) comes first
        ("Text", b"jumps over\nthe lazy d\xc3\xb6g"),
        ("Text", b"The quick brown fox"),
    ]


def test_regions_with_combined_types_repeat_the_formats_per_region(api: EmulatorApi) -> None:
    rect = {"topLeftX": 0, "topLeftY": 0, "bottomRightX": 800, "bottomRightY": 300}
    settings = {
        "resultType": "TextAndHocr",
        "regions": [{"rect": rect}, {"order": 1, "rect": rect}],
    }
    results = api.recognize("RecognizeRegions", PNG, settings)
    assert [kind for kind, _ in results] == ["Text", "Hocr", "Text", "Hocr"]
    assert results[0][1] == b"The quick brown fox"


def test_region_outside_the_image_is_a_task_error(api: EmulatorApi) -> None:
    rect = {"topLeftX": 0, "topLeftY": 0, "bottomRightX": 801, "bottomRightY": 100}
    message = _error_of(api, "RecognizeRegions", PNG, {"regions": [{"rect": rect}]})
    assert "outside the image" in message


def test_multi_page_tiff_is_a_task_error(api: EmulatorApi) -> None:
    message = _error_of(api, "RecognizeImage", samples.make_tiff(["one", "two"]), {})
    assert "Multi-page TIFF" in message


@pytest.mark.parametrize(
    "data",
    [b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, PNG[: len(PNG) // 2]],
    ids=["text", "bad-png-header", "truncated-png"],
)
def test_undecodable_bytes_are_a_task_error(api: EmulatorApi, data: bytes) -> None:
    assert _error_of(api, "RecognizeImage", data, {})


def test_decompression_bomb_is_a_task_error_not_a_crash(api: EmulatorApi) -> None:
    message = _error_of(api, "RecognizeImage", samples.make_bomb_png(), {})
    assert "too large" in message
    assert api.recognize("RecognizeImage", PNG)  # the slot survived


def test_pixel_limit_is_configurable(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    api = emulator_api(make_emulator(max_pixels=1000))
    assert "too large" in _error_of(api, "RecognizeImage", PNG, {})


def test_pdf_to_image_route_and_image_to_pdf_route_are_task_errors(api: EmulatorApi) -> None:
    pdf = samples.make_pdf(["page"])
    assert "RecognizePdf" in _error_of(api, "RecognizeImage", pdf, {})
    assert "not a PDF" in _error_of(api, "RecognizePdf", PNG, {})


def test_pdf_route_recognises_every_page(api: EmulatorApi) -> None:
    pages = ["first page\nline two", "second pâge ✓", "third"]
    pdf = samples.make_pdf(pages, width=400, height=300)
    results = api.recognize("RecognizePdf", pdf, {"resultType": "TextAndPdf"})
    assert results[0] == ("Text", "\f".join(pages).encode())
    assert_valid_pdf(results[1][1], pages=3)
    assert pdf_text_layer(results[1][1]) == ["first page", "line two", "second pâge ✓", "third"]


def test_pdf_without_subject_gets_derived_text_per_page(api: EmulatorApi) -> None:
    image = Image.new("L", (200, 100), 255)
    buffer = io.BytesIO()
    image.save(buffer, "PDF", save_all=True, append_images=[image])
    [(_, text)] = api.recognize("RecognizePdf", buffer.getvalue())
    first, second = text.decode().split("\f")
    assert first and second and first != second


def test_trial_masks_about_a_tenth_of_words_the_same_way_every_time(api: EmulatorApi) -> None:
    words = [f"word{i}" for i in range(400)]
    png = samples.make_png("\n".join(" ".join(words[i : i + 20]) for i in range(0, 400, 20)))
    first = api.recognize("RecognizeImageTrial", png)[0][1].decode().split()
    second = api.recognize("RecognizeImageTrial", png)[0][1].decode().split()
    assert first == second
    masked = [i for i, word in enumerate(first) if word != words[i]]
    assert 20 <= len(masked) <= 60  # about 10 % of 400
    for i in masked:
        assert first[i] == "*" * len(words[i])


def test_rotate_is_accepted_in_both_spellings_and_turns_the_page(api: EmulatorApi) -> None:
    for name in ("Rotate", "rotate"):
        [(_, data)] = api.recognize("RecognizeImage", PNG, {name: 90, "resultType": "JSON"})
        blocks = json.loads(data)
        assert blocks[0]["bottomRightX"] == 600  # the 800x600 page is now 600x800
        assert blocks[-1]["bottomRightY"] == 800
    [(_, data)] = api.recognize("RecognizeImage", PNG, {"Rotate": 180, "resultType": "ImagePNG"})
    assert Image.open(io.BytesIO(data)).size == (800, 600)


def test_derived_text_is_deterministic() -> None:
    assert derived_text("ab" * 32) == derived_text("ab" * 32)
    assert derived_text("ab" * 32, page_index=1) != derived_text("ab" * 32)


class _TwoWordRecognizer:
    """A stand-in OCR engine: proves the seam, reporting one fixed line per page."""

    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        return Recognition(
            pages=tuple(
                PageText(
                    width_px=page.width_px,
                    height_px=page.height_px,
                    lines=(Line(f"engine {settings.language}", Box(5, 5, 100, 30)),),
                )
                for page in document.pages
            )
        )


class _BrokenRecognizer:
    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        raise RuntimeError("engine crashed")


def test_a_recognizer_plugs_in_through_the_config(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    api = emulator_api(make_emulator(recognizer=_TwoWordRecognizer()))
    results = api.recognize("RecognizeImage", PNG, {"language": "German", "resultType": "JSON"})
    assert json.loads(results[0][1]) == [
        {
            "page": 1,
            "topLeftX": 5,
            "topLeftY": 5,
            "bottomRightX": 100,
            "bottomRightY": 30,
            "text": "engine German",
        }
    ]


def test_a_crashing_recognizer_fails_the_task_not_the_server(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    api = emulator_api(make_emulator(recognizer=_BrokenRecognizer(), slots=1))
    assert "internal error" in _error_of(api, "RecognizeImage", PNG, {})
    assert "internal error" in _error_of(api, "RecognizeImage", PNG, {})  # the slot lives on


class _RefusingRecognizer:
    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        raise DocumentError("the engine cannot read Klingon")


def test_a_recognizers_refusal_is_the_tasks_error_message(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    api = emulator_api(make_emulator(recognizer=_RefusingRecognizer(), slots=1))
    assert _error_of(api, "RecognizeImage", PNG, {}) == "the engine cannot read Klingon"


def test_a_large_request_body_is_read_whole(api: EmulatorApi) -> None:
    big = samples.make_png("big file") + b"\x00" * (12 * 1024 * 1024)  # trailing bytes are ignored
    assert api.recognize("RecognizeImage", big) == [("Text", b"big file")]
