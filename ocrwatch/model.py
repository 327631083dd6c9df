"""Value types shared by every part of ocrwatch: API enums, recognition settings, task results.

No I/O happens here. Enum values are the exact wire spellings of the Aspose.OCR Cloud v5
API (they are case-sensitive and some are misspelt on purpose, e.g. ``Ukrainan``), so the
client and the emulator can both use them without translating.

Settings are validated when they are built: a bad value raises ``InvalidSetting`` naming the
field and the allowed values, before any request is made.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ocrwatch.errors import InvalidSetting


class Mode(enum.StrEnum):
    """How a file is recognised; each maps to one API resource."""

    IMAGE = "image"  # RecognizeImage (RecognizeImageTrial without credentials)
    LABEL = "label"  # RecognizeLabel
    REGIONS = "regions"  # RecognizeRegions
    PDF = "pdf"  # RecognizePdf


class TaskStatus(enum.StrEnum):
    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    NOT_EXIST = "NotExist"

    @property
    def is_finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.NOT_EXIST)


class ResponseStatus(enum.StrEnum):
    OK = "Ok"
    PARTIALLY_NOT_FOUND = "PartiallyNotFound"
    NO_ANY_RESULT_DATA = "NoAnyResultData"
    RESULT_DATA_LOST = "ResultDataLost"
    TASK_NOT_FOUND = "TaskNotFound"
    NOT_READY = "NotReady"
    ERROR = "Error"


class ResultType(enum.StrEnum):
    TEXT = "Text"
    PDF = "Pdf"
    TEXT_AND_PDF = "TextAndPdf"
    HOCR = "Hocr"
    TEXT_AND_HOCR = "TextAndHocr"
    PDF_AND_HOCR = "PdfAndHocr"
    TEXT_AND_PDF_AND_HOCR = "TextAndPdfAndHocr"
    IMAGE_PNG = "ImagePNG"
    JSON = "JSON"

    @property
    def formats(self) -> tuple[ResultFormat, ...]:
        """The single formats a (possibly combined) result type produces, in result order."""
        return _COMBINED_FORMATS[self]


class ResultFormat(enum.StrEnum):
    """One output format; the ``type`` of one entry of ``results[]`` and one sidecar."""

    TEXT = "Text"
    PDF = "Pdf"
    HOCR = "Hocr"
    JSON = "JSON"
    IMAGE_PNG = "ImagePNG"


_COMBINED_FORMATS: dict[ResultType, tuple[ResultFormat, ...]] = {
    ResultType.TEXT: (ResultFormat.TEXT,),
    ResultType.PDF: (ResultFormat.PDF,),
    ResultType.TEXT_AND_PDF: (ResultFormat.TEXT, ResultFormat.PDF),
    ResultType.HOCR: (ResultFormat.HOCR,),
    ResultType.TEXT_AND_HOCR: (ResultFormat.TEXT, ResultFormat.HOCR),
    ResultType.PDF_AND_HOCR: (ResultFormat.PDF, ResultFormat.HOCR),
    ResultType.TEXT_AND_PDF_AND_HOCR: (ResultFormat.TEXT, ResultFormat.PDF, ResultFormat.HOCR),
    ResultType.IMAGE_PNG: (ResultFormat.IMAGE_PNG,),
    ResultType.JSON: (ResultFormat.JSON,),
}


class DsrMode(enum.StrEnum):
    REGIONS = "Regions"
    DSR_NO_FILTER = "DsrNoFilter"
    DSR_AND_FILTER = "DsrAndFilter"
    NO_DSR_NO_FILTER = "NoDsrNoFilter"
    TEXT_DETECTOR = "TextDetector"
    DSR_PLUS_DETECTOR = "DsrPlusDetector"
    POLYGONAL_TEXT_DETECTOR = "PolygonalTextDetector"
    LINE_DETECTOR = "LineDetector"


class DsrConfidence(enum.StrEnum):
    DEFAULT = "Default"
    LOW = "Low"
    LOW_MID = "LowMid"
    MID = "Mid"
    MID_HIGH = "MidHigh"
    HIGH = "High"
    ULTRA = "Ultra"
    ALL = "All"


# The 154 values of the Language enum, in SDK order, spelt exactly as on the wire.
LANGUAGES: tuple[str, ...] = (
    "English", "German", "French", "Italian", "Spanish", "Portuguese", "Polish", "Slovene",
    "Slovak", "Netherlands", "Lithuanian", "Latvian", "Danish", "Norwegian", "Finnish",
    "Serbian", "Croatian", "Czech", "Swedish", "Estonian", "Romanian", "Chinese", "Russian",
    "Arabic", "Hindi", "Ukrainan", "Bengali", "Tibetan", "Thai", "Urdu", "Turkish", "Korean",
    "Indonesian", "Hebrew", "Javanese", "Greek", "Japanese", "Persian", "Albanian", "Latin",
    "Vietnamese", "Uzbek", "Georgian", "Bulgarian", "Azerbaijani", "Kazah", "Macedonian",
    "Belorussian", "Malay", "Hausa", "Sundanese", "Swahili", "Tagalog", "Yoruba", "Oromo",
    "Cebuano", "Dutch", "Kurdish", "Serbo_Croatian", "Malagasy", "Zhuang", "Turkmen", "Somali",
    "Hungarian", "Chichewa", "Rwanda", "Min_Bei", "Zulu", "Ilocano", "Min_Dong", "Quechua",
    "Hiligaynon", "Hmong", "Shona", "Xhosa", "Betawi", "Catalan", "Afrikaans", "Minangkabau",
    "Sotho_Southern", "Bikol", "Makua", "Kanuri", "Tswana", "Kikongo", "Luo", "Sukuma",
    "Tsonga", "Bosnian", "Bemba", "Nandi", "Palembang", "Umbundu", "Sotho_Northern",
    "Waray_Waray", "Lamani", "Low_German", "Gilaki", "Musi", "HWT_ENG", "Pu_Xian",
    "Kapampangan", "Bouyei", "Galician", "Ndebele", "Yao", "Sasak", "Swati", "Gusii", "Meru",
    "Wolaytta", "Dong", "Pangasinan", "Dimli", "Makassar", "Tumbuka", "Serer_Sine", "Occitan",
    "Tonga", "Muong", "Kiche", "Luguru", "Wu", "Cantonese", "Min_Nan", "Xiang", "Hakka", "Gan",
    "Chechen", "Kabardian", "Marathi", "Bhojpuri", "Maithili", "Awadhi", "Nepali", "Marwari",
    "Magahi", "Haryanvi", "Chattisgarhi", "Dhundari", "Konkani", "Kanauji", "Mewati",
    "Rajbanshi", "Garhwali", "Kumauni", "Wagdi", "Malvi", "Mewari", "Uyghur", "Telugu",
    "Kannada", "Tamil", "Devanagari",
)  # fmt: skip

_LANGUAGE_SET = frozenset(LANGUAGES)

# Formats a sidecar can be written in; ImagePNG is a preprocessing output, not an OCR result.
SIDECAR_EXTENSIONS: dict[ResultFormat, str] = {
    ResultFormat.TEXT: "txt",
    ResultFormat.PDF: "pdf",
    ResultFormat.HOCR: "hocr",
    ResultFormat.JSON: "json",
}

E = TypeVar("E", bound=enum.StrEnum)


def parse_enum(enum_type: type[E], value: object, *, field_name: str) -> E:
    """Return the member of ``enum_type`` whose wire spelling is exactly ``value``."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            pass
    raise InvalidSetting(field_name, value, allowed=[m.value for m in enum_type])


def parse_language(value: object, *, field_name: str = "language") -> str:
    if isinstance(value, str) and value in _LANGUAGE_SET:
        return value
    raise InvalidSetting(field_name, value, allowed=list(LANGUAGES))


def _parse_int(value: object, *, field_name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSetting(field_name, value, allowed=["an integer"])
    if minimum is not None and value < minimum:
        raise InvalidSetting(field_name, value, allowed=[f"an integer >= {minimum}"])
    return value


def _parse_bool(value: object, *, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidSetting(field_name, value, allowed=["true", "false"])


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in image pixels, corners inclusive of the top-left."""

    top_left_x: int
    top_left_y: int
    bottom_right_x: int
    bottom_right_y: int

    def __post_init__(self) -> None:
        for name in ("top_left_x", "top_left_y", "bottom_right_x", "bottom_right_y"):
            _parse_int(getattr(self, name), field_name=f"rect.{name}", minimum=0)
        if self.bottom_right_x <= self.top_left_x or self.bottom_right_y <= self.top_left_y:
            raise InvalidSetting(
                "rect",
                (self.top_left_x, self.top_left_y, self.bottom_right_x, self.bottom_right_y),
                allowed=["bottom-right corner right of and below the top-left corner"],
            )


@dataclass(frozen=True, slots=True)
class Region:
    """One rectangle of RecognizeRegions; a higher ``order`` places its text later."""

    rect: Rect
    order: int = 0
    name: str | None = None  # local only: a heading in the sidecar, never sent to the API

    def __post_init__(self) -> None:
        _parse_int(self.order, field_name="order")


@dataclass(frozen=True, slots=True)
class RecognitionSettings:
    """The settings object sent with every recognition request.

    Defaults are the SDK model defaults for RecognizeImage (the SDKs always send the booleans,
    so server-side defaults never apply to ocrwatch's requests).
    """

    language: str = "English"
    make_skew_correct: bool = True
    rotate: int = 0
    make_binarization: bool = False
    make_contrast_correction: bool = False
    make_upsampling: bool = False
    make_spell_check: bool = False
    dsr_mode: DsrMode = DsrMode.REGIONS
    dsr_confidence: DsrConfidence = DsrConfidence.DEFAULT
    result_type: ResultType = ResultType.TEXT
    regions: tuple[Region, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        parse_language(self.language)
        for name in (
            "make_skew_correct",
            "make_binarization",
            "make_contrast_correction",
            "make_upsampling",
            "make_spell_check",
        ):
            _parse_bool(getattr(self, name), field_name=name)
        _parse_int(self.rotate, field_name="rotate")
        object.__setattr__(
            self, "dsr_mode", parse_enum(DsrMode, self.dsr_mode, field_name="dsr_mode")
        )
        object.__setattr__(
            self,
            "dsr_confidence",
            parse_enum(DsrConfidence, self.dsr_confidence, field_name="dsr_confidence"),
        )
        object.__setattr__(
            self, "result_type", parse_enum(ResultType, self.result_type, field_name="result_type")
        )
        regions: tuple[object, ...] = tuple(self.regions)  # a list is accepted too
        object.__setattr__(self, "regions", regions)
        for index, region in enumerate(regions):
            if not isinstance(region, Region):
                raise InvalidSetting(f"regions[{index}]", region, allowed=["a Region"])


def parse_regions(values: object) -> Iterable[Region]:
    """Parse ``[{rect: {top_left_x..}, order, name}]`` (snake_case, as in the YAML config)."""
    if not isinstance(values, list | tuple):
        raise InvalidSetting("regions", values, allowed=["a list of {rect, order, name}"])
    regions = []
    for index, item in enumerate(values):
        where = f"regions[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("rect"), Mapping):
            raise InvalidSetting(where, item, allowed=["{rect: {...}, order: N, name: TEXT}"])
        rect_values = item["rect"]
        coordinates = ("top_left_x", "top_left_y", "bottom_right_x", "bottom_right_y")
        missing = [c for c in coordinates if c not in rect_values]
        if missing:
            raise InvalidSetting(f"{where}.rect", dict(rect_values), allowed=list(coordinates))
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidSetting(f"{where}.name", name, allowed=["a string"])
        regions.append(
            Region(
                rect=Rect(**{c: rect_values[c] for c in coordinates}),
                order=item.get("order", 0),
                name=name,
            )
        )
    return regions


@dataclass(frozen=True, slots=True)
class Credentials:
    """An Aspose Cloud application's client id and secret. The secret never shows in a repr."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One entry of ``results[]``, already decoded from Base64."""

    type: str  # the wire ``type`` (e.g. "Text", "Pdf"); kept as a string: not every one is known
    data: bytes

    @property
    def format(self) -> ResultFormat | None:
        try:
            return ResultFormat(self.type)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class AccountPause:
    """Submissions held because the account's plan or quota refuses calls (kept in the store)."""

    reason: str
    http_status: int | None
    since: float  # epoch seconds: the first refusal
    probe_at: float  # epoch seconds: when one submission may find out whether it is over


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a GET (or the status-only probe) said about one task."""

    task_id: str
    task_status: TaskStatus
    response_status: ResponseStatus | None
    results: tuple[ResultFile, ...] = ()
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class JobState(enum.StrEnum):
    """Where one file is in its life. Each state says exactly what a restart must do with it.

    SETTLING    seen; waiting until it stops changing and looks complete.
    QUEUED      ready; waiting for a submission slot or for ``next_attempt_at`` after a retry.
    SUBMITTING  intent committed: a POST is (or may be) in flight and no task id is known.
                On restart: resubmit (at most one duplicate per crash).
    SUBMITTED   task id recorded; polling. On restart: resume polling, never resubmit.
    WRITING     results fetched and stored; sidecars being written. On restart: write again.
    DISPOSING   sidecars written; the source is being kept, moved or deleted.
    DONE        finished; the row stays as history and as the duplicate cache.
    FAILED      moved to the error folder with a reason file.
    """

    SETTLING = "settling"
    QUEUED = "queued"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    WRITING = "writing"
    DISPOSING = "disposing"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """True while the daemon still owes this file something."""
        return self not in (JobState.DONE, JobState.FAILED)


class ErrorClass(enum.StrEnum):
    """Why a file went to the error folder (the ``class`` in its reason file)."""

    TASK_ERROR = "task_error"  # the service processed it and said Error
    REJECTED = "rejected"  # the service refused the request (4xx)
    UNREADABLE = "unreadable"  # the file could not be read or is not a supported, complete file
    UNSUPPORTED = "unsupported"  # a format or file type ocrwatch refuses (symlink, FIFO, ...)
    NEVER_SETTLED = "never_settled"  # still changing after max_settle_seconds
    INCOMPLETE = "incomplete"  # unchanged for incomplete_after_seconds, still not a whole file
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # transient failures or expiries beyond the limit
    DEADLINE = "deadline"  # the task did not finish before its deadline, attempts used up
    OUTPUT_FAILED = "output_failed"  # a sidecar could not be written
    TOO_LARGE = "too_large"  # the service refused the upload as too large (HTTP 413)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Identity of a file's content at one moment; a change means it is a different file."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str | None = None  # computed once the file has settled

    def same_file_as(self, other: Fingerprint) -> bool:
        """Same inode, size and mtime: the bytes hashed earlier are still the bytes on disk."""
        return (self.device, self.inode, self.size, self.mtime_ns) == (
            other.device,
            other.inode,
            other.size,
            other.mtime_ns,
        )


class Disposition(enum.StrEnum):
    """What happens to the source file after its sidecars are written."""

    KEEP = "keep"
    MOVE = "move"
    DELETE = "delete"


class DuplicatePolicy(enum.StrEnum):
    """What to do with a file whose content was already recognised with the same profile."""

    REUSE = "reuse"  # write the stored result again, no API call
    SKIP = "skip"  # leave it alone; no sidecar
    REPROCESS = "reprocess"  # call the API again


class WatchMode(enum.StrEnum):
    AUTO = "auto"
    EVENTS = "events"
    POLLING = "polling"


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the state store: one file's job. ``path`` is absolute."""

    id: int
    inbox: str
    path: Path
    state: JobState
    profile_hash: str
    fingerprint: Fingerprint | None = None
    mode: Mode | None = None  # the resource the task was submitted to (GET uses the same)
    task_id: str | None = None
    attempts: int = 0
    next_attempt_at: float | None = None  # epoch seconds; None = now
    last_error: str | None = None
    error_class: ErrorClass | None = None
    http_status: int | None = None
    first_seen_at: float = 0.0
    submitted_at: float | None = None
    updated_at: float = 0.0
