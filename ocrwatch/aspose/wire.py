"""The Aspose.OCR Cloud v5 wire format: resource names, JSON shapes and header values.

Pure functions, no I/O: they turn ``ocrwatch.model`` values into what the API expects and
what it answers back into ``ocrwatch.model`` values.

Quirks kept here (see the API notes, §0): the POST answers a bare task id as ``text/plain``
(tolerated JSON-quoted too); every ``results[].data`` is Base64, plain text included; the
rotation field is spelt ``Rotate``; enums go out as their exact, case-sensitive strings;
booleans are always sent so server-side defaults never apply.

Unknown values in an answer: an unknown ``responseStatusCode`` becomes ``None`` (the task
status is what callers act on), while a missing or unknown ``taskStatus`` makes the whole
answer unusable and raises ``TransientError``, like any body that is not the expected JSON
(typically an error page from a proxy); polling again later is the only sensible reaction.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from ocrwatch.errors import InvalidSetting, TransientError
from ocrwatch.model import (
    DsrConfidence,
    DsrMode,
    Mode,
    RecognitionSettings,
    ResponseStatus,
    ResultFile,
    ResultType,
    TaskResult,
    TaskStatus,
    parse_enum,
    parse_language,
)

API_PREFIX = "/v5.0/ocr/"
TOKEN_PATH = "/connect/token"
STATUS_RESOURCE = "Utilities/GetTaskStatus"
TRIAL_RESOURCE = "RecognizeImageTrial"
RESOURCES: dict[Mode, str] = {
    Mode.IMAGE: "RecognizeImage",
    Mode.LABEL: "RecognizeLabel",
    Mode.REGIONS: "RecognizeRegions",
    Mode.PDF: "RecognizePdf",
}
MAX_DETAIL_CHARS = 300


def resource_for(mode: Mode, *, is_trial: bool) -> str:
    """The resource a task of ``mode`` is submitted to, and fetched and cancelled from."""
    if is_trial and mode is Mode.IMAGE:
        return TRIAL_RESOURCE
    return RESOURCES[mode]


def settings_json(mode: Mode, settings: RecognitionSettings) -> dict[str, object]:
    """The ``settings`` object as the SDKs spell it; raises ``InvalidSetting`` before sending.

    ``RecognitionSettings`` validates itself when built; the checks here repeat the cheap ones
    so that a value smuggled past the constructor still fails with the field's name.
    """
    wire: dict[str, object] = {
        "language": parse_language(settings.language),
        "makeSkewCorrect": _bool(settings.make_skew_correct, "make_skew_correct"),
        "Rotate": _int(settings.rotate, "rotate"),
        "makeBinarization": _bool(settings.make_binarization, "make_binarization"),
        "makeContrastCorrection": _bool(
            settings.make_contrast_correction, "make_contrast_correction"
        ),
        "makeUpsampling": _bool(settings.make_upsampling, "make_upsampling"),
        "makeSpellCheck": _bool(settings.make_spell_check, "make_spell_check"),
        "dsrMode": parse_enum(DsrMode, settings.dsr_mode, field_name="dsr_mode").value,
        "dsrConfidence": parse_enum(
            DsrConfidence, settings.dsr_confidence, field_name="dsr_confidence"
        ).value,
        "resultType": parse_enum(ResultType, settings.result_type, field_name="result_type").value,
    }
    if mode is Mode.REGIONS:
        if not settings.regions:
            raise InvalidSetting(
                "regions", [], allowed=["at least one region when mode is regions"]
            )
        # Region names are local headings for the sidecar; the API never sees them.
        wire["regions"] = [
            {
                "rect": {
                    "topLeftX": region.rect.top_left_x,
                    "topLeftY": region.rect.top_left_y,
                    "bottomRightX": region.rect.bottom_right_x,
                    "bottomRightY": region.rect.bottom_right_y,
                },
                "order": region.order,
            }
            for region in settings.regions
        ]
    return wire


def body_affixes(settings: Mapping[str, object]) -> tuple[bytes, bytes]:
    """What goes before and after the Base64 image in ``{"image": ..., "settings": ...}``."""
    settings_text = json.dumps(settings, separators=(",", ":"), ensure_ascii=True)
    return b'{"image":"', f'","settings":{settings_text}}}'.encode("ascii")


def parse_task_id(body: bytes) -> str | None:
    """The task id from a POST answer: bare text, or a JSON string; None if there is none."""
    text = body.decode("utf-8", errors="replace").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = text.strip('"')
        text = str(decoded).strip()
    if not text or any(ch.isspace() or ch in "{}<>" for ch in text):
        return None
    return text


def parse_ocr_response(body: bytes, *, task_id: str) -> TaskResult:
    """An ``OCRResponse`` as a ``TaskResult``; ``TransientError`` if the body is not one."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise TransientError(
            f"the OCR service answered task {task_id} with a body that is not JSON "
            f"(starts {_preview(body)!r}); a proxy in between may have answered"
        ) from None
    if not isinstance(payload, dict):
        raise TransientError(f"the OCR service answered task {task_id} with unexpected JSON")
    raw_status = payload.get("taskStatus")
    try:
        task_status = TaskStatus(str(raw_status))
    except ValueError:
        raise TransientError(
            f"the OCR service answered task {task_id} with an unknown taskStatus {raw_status!r}"
        ) from None
    raw_response_status = payload.get("responseStatusCode")
    try:
        response_status: ResponseStatus | None = ResponseStatus(str(raw_response_status))
    except ValueError:
        response_status = None
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    return TaskResult(
        task_id=task_id,
        task_status=task_status,
        response_status=response_status,
        results=_parse_results(payload.get("results"), task_id=task_id),
        messages=_strings(error.get("messages")),
        warnings=_strings(error.get("warnings")),
    )


def parse_token(body: bytes) -> tuple[str, str, float] | None:
    """``(access_token, token_type, lifetime_seconds)`` from a token answer, or None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        return None
    token_type = payload.get("token_type")
    if not isinstance(token_type, str) or not token_type or token_type.lower() == "bearer":
        token_type = "Bearer"
    lifetime = payload.get("expires_in", 3600)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = 3600
    return access_token, token_type, float(lifetime)


def oauth_error(body: bytes) -> str | None:
    """The OAuth ``error`` code of a failed token request, e.g. ``invalid_client``."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    code = payload.get("error") if isinstance(payload, dict) else None
    return code if isinstance(code, str) else None


def problem_detail(body: bytes) -> str:
    """A one-line summary of an error body: ProblemDetails title/detail/errors, or its text."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _trim(body.decode("utf-8", errors="replace"))
    parts = [str(payload[key]) for key in ("title", "detail", "error") if payload.get(key)]
    errors = payload.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{name}: {'; '.join(_strings(msgs))}" for name, msgs in errors.items())
    return _trim(" | ".join(parts))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _parse_results(raw: object, *, task_id: str) -> tuple[ResultFile, ...]:
    if not isinstance(raw, list):
        return ()
    files: list[ResultFile] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        data = item.get("data") or ""
        try:
            decoded = base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise TransientError(
                f"the OCR service sent result data for task {task_id} that is not Base64"
            ) from None
        files.append(ResultFile(type=str(item.get("type") or ""), data=decoded))
    return tuple(files)


def _strings(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list):
        return ()
    return tuple(str(item) for item in raw if item is not None)


def _bool(value: object, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting(field_name, value, allowed=["true", "false"])
    return value


def _int(value: object, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSetting(field_name, value, allowed=["an integer"])
    return value


def _trim(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL_CHARS:
        return text[: MAX_DETAIL_CHARS - 3] + "..."
    return text


def _preview(body: bytes) -> str:
    return " ".join(body[:60].decode("utf-8", errors="replace").split())
