"""The emulator's settings and the faults it injects, as frozen values checked when built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ocrwatch import formats
from ocrwatch.model import Credentials, ResultFormat

if TYPE_CHECKING:
    from ocrwatch.emulator.recognizer import Recognizer


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")


def _check_range(name: str, value: tuple[float, float]) -> None:
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
        raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, not {value!r}")


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong on purpose. Fractions are probabilities per request (or per task).

    ``server_error``, ``too_many_requests`` and ``connection_reset`` apply to every API request
    (POST, GET, DELETE, GetTaskStatus); ``server_error`` and ``connection_reset`` also apply to
    the token endpoint, whose only 429 is the real failed-login lockout. They are decided
    before anything changes, so a faulted POST never creates a task. ``task_error`` ends a task
    in ``Error``; ``task_stuck`` leaves it ``Processing`` forever. ``token_lifetime_seconds``
    makes tokens stop working earlier than the ``expires_in`` they were issued with, as if
    revoked. ``latency_seconds`` delays every API response after it was decided: a POST's task
    already exists while its answer is held back. The token endpoint is never delayed, so a
    client can still log in while its API calls are slow. ``unavailable_retry_after`` adds
    ``Retry-After`` (``retry_after_seconds``) to the 503 answers among the server errors, as a
    gateway in front of a service under maintenance does.

    The account: ``quota_calls`` lets that many API calls through (token requests are free)
    and answers every later one ``quota_status`` (402 by default; the real answer is
    undocumented) until the faults are replaced with a different quota, which starts a new
    period; ``plan_refused`` answers every API call 403, as for a plan without this API.
    """

    server_error: float = 0.0
    too_many_requests: float = 0.0
    retry_after_seconds: float = 1.0
    connection_reset: float = 0.0
    unavailable_retry_after: bool = False
    task_error: float = 0.0
    task_stuck: float = 0.0
    token_lifetime_seconds: float | None = None
    latency_seconds: tuple[float, float] = (0.0, 0.0)
    quota_calls: int | None = None
    quota_status: int = 402
    plan_refused: bool = False

    def __post_init__(self) -> None:
        for name in (
            "server_error",
            "too_many_requests",
            "connection_reset",
            "task_error",
            "task_stuck",
        ):
            _check_fraction(name, getattr(self, name))
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        if self.token_lifetime_seconds is not None and self.token_lifetime_seconds < 0:
            raise ValueError("token_lifetime_seconds must not be negative")
        object.__setattr__(self, "latency_seconds", tuple(self.latency_seconds))
        _check_range("latency_seconds", self.latency_seconds)
        if self.quota_calls is not None and self.quota_calls < 0:
            raise ValueError("quota_calls must not be negative")
        if self.quota_status not in (402, 403):
            raise ValueError(f"quota_status must be 402 or 403, not {self.quota_status!r}")


@dataclass(frozen=True, slots=True)
class ResultShape:
    """How the answers of a task look, where the real service's are undocumented or vary.

    ``type_names`` replaces the ``type`` string of a format's results (the service sends
    invoice JSON as ``Text`` and region detection as ``Other``); ``json_object`` wraps the
    JSON output's blocks in an object (``{"blocks": [...]}``, as the .NET SDK's README reads
    it) instead of a bare array; ``pages_apart`` answers one Pdf and one Hocr result per page
    instead of one document. ``ocr_system`` is what the hOCR's ``ocr-system`` names as the
    reader: the emulator, or (the embedded service) the local engine.
    """

    type_names: tuple[tuple[ResultFormat, str], ...] = ()
    json_object: bool = False
    pages_apart: bool = False
    ocr_system: str = "ocrwatch emulator"

    def type_name(self, result_format: ResultFormat) -> str:
        return dict(self.type_names).get(result_format, result_format.value)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How one emulator instance listens, authenticates, queues and recognises.

    ``credentials=None`` makes the token endpoint hand a token to any client id and secret
    (authenticated routes still require one). Each task holds one of ``slots`` for
    ``uniform(*processing_seconds)`` seconds, or for as long as recognition takes if longer.
    """

    host: str = "127.0.0.1"
    port: int = 0
    credentials: Credentials | None = None
    token_lifetime_seconds: float = 3600.0
    processing_seconds: tuple[float, float] = (0.0, 0.0)
    slots: int = 4
    retention_seconds: float = 86400.0
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    recognizer: Recognizer | None = None
    max_pixels: int = formats.MAX_CLOUD_PAGE_PIXELS  # the embedded service passes the engine's
    # What the emulator takes as it is: what Aspose Cloud takes, or (the embedded service)
    # what the local engine reads, every page of a TIFF included.
    target: formats.Target = formats.Target.CLOUD
    max_upload_bytes: int | None = None
    # A POST whose file holds these bytes is answered 403, as a gateway rule refusing that
    # content would; every other call goes on (a 403 that is the file's, not the account's).
    forbidden_content: bytes | None = None
    result_shape: ResultShape = field(default_factory=ResultShape)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port!r}")
        if self.token_lifetime_seconds <= 0:
            raise ValueError("token_lifetime_seconds must be positive")
        object.__setattr__(self, "processing_seconds", tuple(self.processing_seconds))
        _check_range("processing_seconds", self.processing_seconds)
        if self.slots < 1:
            raise ValueError("slots must be at least 1")
        if self.retention_seconds <= 0:
            raise ValueError("retention_seconds must be positive")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be at least 1")
        if self.max_upload_bytes is not None and self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be at least 1")
