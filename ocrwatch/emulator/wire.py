"""The API's JSON shapes: parse a recognition request body, write OCRResponse and problems.

Request property names are matched case-insensitively at every level (ASP.NET Core does;
the SDKs send ``Rotate``, the docs ``rotate``). A missing integer is 0 (.NET omits zeros); a
missing or null setting takes the service's documented default. Enum values must be the exact,
case-sensitive wire strings; integers are refused for enums. All problems of a body are
reported at once as an ASP.NET-style validation ProblemDetails (``errors{field: [messages]}``)
whose keys are JSON paths such as ``$.settings.language``. Unknown properties are ignored.

Responses carry exactly the fields a strict client (the Java SDK) accepts: ``id,
responseStatusCode, taskStatus, results, error``; results items ``type, data``; error
``messages, warnings``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ocrwatch.errors import InvalidSetting
from ocrwatch.model import (
    LANGUAGES,
    DsrConfidence,
    DsrMode,
    RecognitionSettings,
    Rect,
    Region,
    ResultType,
    TaskResult,
)

_INT32 = (-(2**31), 2**31 - 1)
_RESULT_TYPE_TABLE = ("Text", "Excel", "Csv", "CsvAndExcel")
_LANGUAGE_SET = frozenset(LANGUAGES)
_BOOLEAN_DEFAULTS = {  # the server defaults stated in the docs
    "makeSkewCorrect": True,
    "makeBinarization": False,
    "makeSpellCheck": False,
    "makeContrastCorrection": True,
    "makeUpsampling": False,
}
_RECT_FIELDS = (
    ("topLeftX", "top_left_x"),
    ("topLeftY", "top_left_y"),
    ("bottomRightX", "bottom_right_x"),
    ("bottomRightY", "bottom_right_y"),
)


class Resource(enum.StrEnum):
    """The recognition resources the emulator serves (``/v5.0/ocr/<value>``)."""

    RECOGNIZE_IMAGE = "RecognizeImage"
    RECOGNIZE_IMAGE_TRIAL = "RecognizeImageTrial"
    RECOGNIZE_LABEL = "RecognizeLabel"
    RECOGNIZE_REGIONS = "RecognizeRegions"
    RECOGNIZE_PDF = "RecognizePdf"

    @property
    def is_trial(self) -> bool:
        return self is Resource.RECOGNIZE_IMAGE_TRIAL


@dataclass(frozen=True, slots=True)
class Submission:
    """A valid recognition request: the decoded file and its settings."""

    resource: Resource
    document: bytes
    settings: RecognitionSettings


class ValidationFailed(Exception):
    """The body is not a valid request; ``errors`` maps a JSON path to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))


def _field(obj: Mapping[str, object], name: str) -> tuple[str, object] | None:
    """The (spelling used, value) of property ``name``, matched case-insensitively."""
    found: tuple[str, object] | None = None
    for key, value in obj.items():
        if key.lower() == name.lower():
            found = (key, value)  # like System.Text.Json, the last duplicate wins
    return found


def _not_converted(path: str, target: str) -> str:
    return f"The JSON value could not be converted to {target}. Path: {path}."


class _SettingsReader:
    """Reads one settings object, collecting every problem instead of stopping at the first."""

    def __init__(self, settings: Mapping[str, object]) -> None:
        self.settings = settings
        self.errors: dict[str, list[str]] = {}

    def fail(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def value(self, name: str) -> tuple[str, object]:
        """The JSON path (spelt as the client spelt it) and the value of setting ``name``."""
        found = _field(self.settings, name)
        if found is None:
            return f"$.settings.{name}", None
        return f"$.settings.{found[0]}", found[1]

    def boolean(self, name: str) -> bool:
        path, value = self.value(name)
        if value is None:
            return _BOOLEAN_DEFAULTS[name]
        if isinstance(value, bool):
            return value
        self.fail(path, _not_converted(path, "System.Boolean"))
        return _BOOLEAN_DEFAULTS[name]

    def integer(self, value: object, path: str) -> int:
        if value is None:
            return 0
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and _INT32[0] <= value <= _INT32[1]
        ):
            return value
        self.fail(path, _not_converted(path, "System.Int32"))
        return 0

    def choice(self, name: str, allowed: frozenset[str] | tuple[str, ...], default: str) -> str:
        path, value = self.value(name)
        if value is None:
            return default
        if isinstance(value, str) and value in allowed:
            return value
        shown = value if isinstance(value, str) else json.dumps(value)
        self.fail(
            path,
            f"{_not_converted(path, name[0].upper() + name[1:])} "
            f"The value {shown!r} is not one of the allowed values.",
        )
        return default

    def regions(self) -> tuple[Region, ...]:
        path, value = self.value("regions")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(path, _not_converted(path, "System.Collections.Generic.List`1[OCRRegion]"))
            return ()
        regions = []
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            if not isinstance(item, dict):
                self.fail(where, _not_converted(where, "OCRRegion"))
                continue
            order_found = _field(item, "order")
            order = self.integer(order_found and order_found[1], f"{where}.order")
            rect_found = _field(item, "rect")
            rect_value = rect_found[1] if rect_found else None
            if not isinstance(rect_value, dict):
                self.fail(f"{where}.rect", "The Rect field is required.")
                continue
            coordinates = {}
            for wire_name, model_name in _RECT_FIELDS:
                found = _field(rect_value, wire_name)
                coordinates[model_name] = self.integer(
                    found and found[1], f"{where}.rect.{wire_name}"
                )
            try:
                regions.append(Region(rect=Rect(**coordinates), order=order))
            except InvalidSetting as exc:
                self.fail(f"{where}.rect", f"The rectangle is not valid: {exc}")
        return tuple(regions)

    def read(self) -> RecognitionSettings:
        path, rotate_value = self.value("rotate")
        language = self.choice("language", _LANGUAGE_SET, "English")
        dsr_mode = self.choice("dsrMode", frozenset(DsrMode), DsrMode.REGIONS)
        dsr_confidence = self.choice("dsrConfidence", frozenset(DsrConfidence), "Default")
        result_type = self.choice("resultType", frozenset(ResultType), ResultType.TEXT)
        self.choice("resultTypeTable", _RESULT_TYPE_TABLE, "Text")  # validated, not used
        return RecognitionSettings(
            language=language,
            make_skew_correct=self.boolean("makeSkewCorrect"),
            rotate=self.integer(rotate_value, path),
            make_binarization=self.boolean("makeBinarization"),
            make_contrast_correction=self.boolean("makeContrastCorrection"),
            make_upsampling=self.boolean("makeUpsampling"),
            make_spell_check=self.boolean("makeSpellCheck"),
            dsr_mode=DsrMode(dsr_mode),
            dsr_confidence=DsrConfidence(dsr_confidence),
            result_type=ResultType(result_type),
            regions=self.regions(),
        )


def _decode_image(value: object, errors: dict[str, list[str]]) -> bytes | None:
    if value is None or value == "":
        errors.setdefault("Image", []).append("The Image field is required.")
        return None
    if not isinstance(value, str):
        errors.setdefault("$.image", []).append(_not_converted("$.image", "System.String"))
        return None
    compact = "".join(value.split())  # Convert.FromBase64String skips white space
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        errors.setdefault("$.image", []).append(
            f"{_not_converted('$.image', 'System.Byte[]')} The input is not a valid Base-64 string."
        )
        return None


def parse_submission(body: bytes, *, resource: Resource) -> Submission:
    """Decode and validate a POST body; raises ``ValidationFailed`` listing every problem."""
    if not body.strip():
        raise ValidationFailed({"": ["A non-empty request body is required."]})
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = (
            f"LineNumber: {getattr(exc, 'lineno', 1) - 1} | "
            f"BytePositionInLine: {getattr(exc, 'colno', 1) - 1}"
        )
        raise ValidationFailed(
            {"$": [f"The request body is not valid JSON. Path: $ | {position}."]}
        ) from exc
    if not isinstance(document, dict):
        raise ValidationFailed({"$": [_not_converted("$", f"OCR{resource.value}Body")]})
    errors: dict[str, list[str]] = {}
    image_found = _field(document, "image")
    image = _decode_image(image_found and image_found[1], errors)
    settings_found = _field(document, "settings")
    settings_value = settings_found[1] if settings_found else None
    settings = None
    if settings_value is None:
        errors.setdefault("Settings", []).append("The Settings field is required.")
    elif not isinstance(settings_value, dict):
        path = f"$.{settings_found[0] if settings_found else 'settings'}"
        errors.setdefault(path, []).append(_not_converted(path, "OCRSettings"))
    else:
        reader = _SettingsReader(settings_value)
        settings = reader.read()
        errors.update(reader.errors)
    if errors or image is None or settings is None:
        raise ValidationFailed(errors)
    return Submission(resource=resource, document=image, settings=settings)


def ocr_response(result: TaskResult, *, include_results: bool = True) -> bytes:
    """The OCRResponse JSON for a task; ``results`` is always null for the status probe."""
    finished_with_results = include_results and result.results
    has_error = bool(result.messages or result.warnings)
    body = {
        "id": result.task_id,
        "responseStatusCode": None
        if result.response_status is None
        else result.response_status.value,
        "taskStatus": result.task_status.value,
        "results": [
            {"type": item.type, "data": base64.b64encode(item.data).decode("ascii")}
            for item in result.results
        ]
        if finished_with_results
        else None,
        "error": {"messages": list(result.messages), "warnings": list(result.warnings)}
        if has_error
        else None,
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def new_trace_id() -> str:
    """A W3C traceparent-shaped id, as ASP.NET Core puts in its problem responses."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"


def validation_problem(errors: Mapping[str, list[str]]) -> bytes:
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": dict(errors),
        "traceId": new_trace_id(),
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


_PROBLEM_TYPES = {
    400: ("https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"),
    401: ("https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"),
    402: ("https://tools.ietf.org/html/rfc9110#section-15.5.3", "Payment Required"),
    403: ("https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"),
    404: ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
    405: ("https://tools.ietf.org/html/rfc9110#section-15.5.6", "Method Not Allowed"),
    413: ("https://tools.ietf.org/html/rfc9110#section-15.5.14", "Content Too Large"),
    415: ("https://tools.ietf.org/html/rfc9110#section-15.5.16", "Unsupported Media Type"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),
    500: ("https://tools.ietf.org/html/rfc9110#section-15.6.1", "Internal Server Error"),
    502: ("https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway"),
    503: ("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"),
    504: ("https://tools.ietf.org/html/rfc9110#section-15.6.5", "Gateway Timeout"),
}


def problem(status: int, *, detail: str, instance: str) -> bytes:
    """An RFC 7807 ProblemDetails with exactly ``type, title, status, detail, instance``."""
    type_url, title = _PROBLEM_TYPES[status]
    body = {
        "type": type_url,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
