"""The emulator rejects malformed recognition requests the way ASP.NET Core would (400)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import requests
from conftest import EmulatorApi

from ocrwatch.emulator import Emulator, samples

ApiFactory = Callable[[Emulator], EmulatorApi]
IMAGE = base64.b64encode(samples.make_png("valid")).decode()
VALIDATION_FIELDS = {"type", "title", "status", "traceId", "errors"}


@pytest.fixture
def api(emulator: Emulator, emulator_api: ApiFactory) -> EmulatorApi:
    return emulator_api(emulator)


def _post_raw(
    api: EmulatorApi, data: bytes, *, content_type: str = "application/json"
) -> requests.Response:
    return api.http.post(
        f"{api.base_url}/v5.0/ocr/RecognizeImage",
        data=data,
        headers={**api.headers(), "Content-Type": content_type},
        timeout=10,
    )


def _errors(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    body = response.json()
    assert set(body) == VALIDATION_FIELDS
    assert body["status"] == 400
    errors: dict[str, list[str]] = body["errors"]
    return errors


def _post_json(api: EmulatorApi, body: dict[str, Any]) -> requests.Response:
    return api.http.post(
        f"{api.base_url}/v5.0/ocr/RecognizeImage", json=body, headers=api.headers(), timeout=10
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("resultType", "text"),
        ("resultType", "Docx"),
        ("language", "Ukrainian"),
        ("dsrMode", "CraftPoly"),
        ("dsrConfidence", "mid"),
        ("resultType", 1),
    ],
)
def test_unknown_enum_value_is_400_naming_the_field(
    api: EmulatorApi, setting: str, value: object
) -> None:
    errors = _errors(_post_json(api, {"image": IMAGE, "settings": {setting: value}}))
    assert list(errors) == [f"$.settings.{setting}"]


def test_property_names_match_case_insensitively_at_every_level(api: EmulatorApi) -> None:
    body = {
        "Image": IMAGE,
        "Settings": {
            "Language": "English",
            "MakeSkewCorrect": False,
            "ResultType": "Text",
            "REGIONS": [
                {"Order": 1, "RECT": {"TopLeftX": 0, "bottomrightx": 10, "BottomRightY": 10}}
            ],
        },
    }
    assert _post_json(api, body).status_code == 200


def test_exact_spelling_of_misspelt_languages_is_accepted(api: EmulatorApi) -> None:
    for language in ("Ukrainan", "Kazah", "HWT_ENG", "Serbo_Croatian"):
        response = _post_json(api, {"image": IMAGE, "settings": {"language": language}})
        assert response.status_code == 200, language


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"makeSkewCorrect": "true"}, "$.settings.makeSkewCorrect"),
        ({"Rotate": "90"}, "$.settings.Rotate"),
        ({"rotate": 1.5}, "$.settings.rotate"),
        ({"regions": {"rect": {}}}, "$.settings.regions"),
        (
            {"regions": [{"rect": {"topLeftX": "0", "bottomRightX": 5, "bottomRightY": 5}}]},
            "$.settings.regions[0].rect.topLeftX",
        ),
        ({"regions": [{"rect": {}}]}, "$.settings.regions[0].rect"),
    ],
)
def test_wrong_types_are_400(api: EmulatorApi, settings: dict[str, Any], field: str) -> None:
    errors = _errors(_post_json(api, {"image": IMAGE, "settings": settings}))
    assert field in errors


def test_every_problem_is_reported_at_once(api: EmulatorApi) -> None:
    settings = {"language": "Klingon", "resultType": "Docx", "makeUpsampling": 1}
    errors = _errors(_post_json(api, {"image": IMAGE, "settings": settings}))
    assert set(errors) == {
        "$.settings.language",
        "$.settings.resultType",
        "$.settings.makeUpsampling",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"settings": {}}, "Image"),
        ({"image": "", "settings": {}}, "Image"),
        ({"image": IMAGE}, "Settings"),
        ({"image": IMAGE, "settings": None}, "Settings"),
        ({"image": "not base64!", "settings": {}}, "$.image"),
        ({"image": IMAGE[:-2], "settings": {}}, "$.image"),  # padding cut off
        ({"image": "data:image/png;base64," + IMAGE, "settings": {}}, "$.image"),
        ({"image": 12, "settings": {}}, "$.image"),
    ],
)
def test_missing_or_invalid_image_and_settings(
    api: EmulatorApi, body: dict[str, Any], field: str
) -> None:
    assert field in _errors(_post_json(api, body))


@pytest.mark.parametrize("data", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_invalid_json_is_400(api: EmulatorApi, data: bytes) -> None:
    assert _errors(_post_raw(api, data))


def test_base64_with_line_breaks_is_accepted(api: EmulatorApi) -> None:
    wrapped = "\n".join(IMAGE[i : i + 76] for i in range(0, len(IMAGE), 76))
    assert _post_json(api, {"image": wrapped, "settings": {}}).status_code == 200


def test_missing_integers_default_to_zero(api: EmulatorApi) -> None:
    body = {
        "image": IMAGE,
        "settings": {"regions": [{"rect": {"bottomRightX": 5, "bottomRightY": 5}}]},
    }
    assert _post_json(api, body).status_code == 200


def test_a_body_that_is_not_json_content_is_415(api: EmulatorApi) -> None:
    response = _post_raw(api, b"image=abc", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_rejected_requests_create_no_task(emulator: Emulator, api: EmulatorApi) -> None:
    _post_json(api, {"image": IMAGE, "settings": {"resultType": "Docx"}})
    _post_raw(api, b"{")
    stats = emulator.stats()
    assert stats.submits == {}
    assert stats.tasks_by_status == {}


def test_wrong_method_is_405(api: EmulatorApi) -> None:
    response = api.http.put(
        f"{api.base_url}/v5.0/ocr/RecognizeImage", data=b"{}", headers=api.headers(), timeout=10
    )
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "GET", "DELETE"}
