"""The wire format the client speaks: settings as the SDKs spell them, answers it tolerates."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from ocrwatch.aspose import wire
from ocrwatch.errors import InvalidSetting, TransientError
from ocrwatch.model import (
    DsrConfidence,
    DsrMode,
    Mode,
    RecognitionSettings,
    Rect,
    Region,
    ResponseStatus,
    ResultType,
    TaskStatus,
)


def test_settings_are_sent_as_the_sdks_spell_them() -> None:
    settings = RecognitionSettings(
        language="Ukrainan",
        rotate=90,
        make_spell_check=True,
        dsr_mode=DsrMode.DSR_PLUS_DETECTOR,
        dsr_confidence=DsrConfidence.MID_HIGH,
        result_type=ResultType.TEXT_AND_PDF,
    )

    assert wire.settings_json(Mode.IMAGE, settings) == {
        "language": "Ukrainan",
        "makeSkewCorrect": True,
        "Rotate": 90,
        "makeBinarization": False,
        "makeContrastCorrection": False,
        "makeUpsampling": False,
        "makeSpellCheck": True,
        "dsrMode": "DsrPlusDetector",
        "dsrConfidence": "MidHigh",
        "resultType": "TextAndPdf",
    }


def test_regions_are_sent_with_rect_and_order_but_never_their_local_names() -> None:
    settings = RecognitionSettings(
        regions=(Region(Rect(1, 2, 30, 40), order=2, name="Total"), Region(Rect(0, 0, 5, 5))),
    )

    sent = wire.settings_json(Mode.REGIONS, settings)

    assert sent["regions"] == [
        {
            "rect": {"topLeftX": 1, "topLeftY": 2, "bottomRightX": 30, "bottomRightY": 40},
            "order": 2,
        },
        {"rect": {"topLeftX": 0, "topLeftY": 0, "bottomRightX": 5, "bottomRightY": 5}, "order": 0},
    ]
    assert "Total" not in json.dumps(sent)


def test_regions_mode_without_regions_is_an_invalid_setting() -> None:
    with pytest.raises(InvalidSetting) as caught:
        wire.settings_json(Mode.REGIONS, RecognitionSettings())

    assert caught.value.field_name == "regions"


@pytest.mark.parametrize(
    ("body", "task_id"),
    [
        (b"a197aade-bba9-4c7a-92c7-46851b3dceaa", "a197aade-bba9-4c7a-92c7-46851b3dceaa"),
        (b"  a197aade-bba9\r\n", "a197aade-bba9"),
        (b'"a197aade-bba9"', "a197aade-bba9"),
        (b'\n"TTS01232-9d40"\n', "TTS01232-9d40"),
        (b"", None),
        (b'""', None),
        (b"<html>bad gateway</html>", None),
    ],
)
def test_task_id_is_read_from_plain_or_quoted_text(body: bytes, task_id: str | None) -> None:
    assert wire.parse_task_id(body) == task_id


def test_an_ocr_response_becomes_a_task_result_with_decoded_files() -> None:
    body = json.dumps(
        {
            "id": "t1",
            "taskStatus": "Completed",
            "responseStatusCode": "Ok",
            "results": [
                {"type": "Text", "data": base64.b64encode("Grüße".encode()).decode()},
                {"type": "Pdf", "data": base64.b64encode(b"%PDF-1.4").decode()},
            ],
            "error": {"messages": ["page 2 is blank"], "warnings": None},
        }
    ).encode()

    result = wire.parse_ocr_response(body, task_id="t1")

    assert result.task_status is TaskStatus.COMPLETED
    assert result.response_status is ResponseStatus.OK
    assert [(f.type, f.data) for f in result.results] == [
        ("Text", "Grüße".encode()),
        ("Pdf", b"%PDF-1.4"),
    ]
    assert result.messages == ("page 2 is blank",)
    assert result.warnings == ()


def test_an_unknown_response_status_is_kept_as_none_not_a_crash() -> None:
    body = b'{"taskStatus":"Pending","responseStatusCode":"SomethingNew","results":null}'

    result = wire.parse_ocr_response(body, task_id="t1")

    assert result.task_status is TaskStatus.PENDING
    assert result.response_status is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b"[]",
        b'{"taskStatus":"Sleeping"}',
        b'{"taskStatus":"Completed","results":[{"type":"Text","data":"not base64!"}]}',
    ],
)
def test_a_body_that_is_not_an_ocr_response_is_transient(body: bytes) -> None:
    with pytest.raises(TransientError):
        wire.parse_ocr_response(body, task_id="t1")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 01 Jan 2025 00:10:00 GMT", 600.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)

    assert wire.parse_retry_after(header, now=now) == seconds


def test_problem_details_are_summarised_on_one_trimmed_line() -> None:
    body = json.dumps(
        {
            "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "errors": {"settings.language": ["The value 'Klingon' is not valid."]},
            "traceId": "00-abc",
        }
    ).encode()

    detail = wire.problem_detail(body)

    assert detail == (
        "One or more validation errors occurred. | "
        "settings.language: The value 'Klingon' is not valid."
    )
    assert len(wire.problem_detail(b"x" * 10_000)) <= wire.MAX_DETAIL_CHARS
