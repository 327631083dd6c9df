"""The embedded service: the Aspose-compatible emulator, in-process, reading with the local engine.

``EmbeddedService`` starts an ``EnginePool`` and an ``Emulator`` on a private loopback port with
credentials made up at start, whose recogniser is the engine (``EngineRecognizer``). The daemon
then talks to ``base_url`` with ``credentials`` through the same client and pipeline it uses
for Aspose Cloud: no second code path. Each emulator slot is one engine worker, and tasks take
no made-up processing time.

What the adapter maps: ``Rotate``, ``makeSkewCorrect``, ``makeUpsampling``,
``makeBinarization``, ``makeContrastCorrection``, ``dsrMode`` and ``language`` go to
``EngineOptions`` (see ``ocrwatch.engine`` for what each does; ``dsrMode`` ``NoDsrNoFilter``
and the detector-only modes read lines straight across the page, the others read columns and
blocks one after another). The emulator has already turned the pages by right
angles and handles the regions' output; the adapter lets the engine read each region on its
own when the regions do not overlap (text cut by a region's edge is then cut as Aspose cuts
it), and reads the whole page otherwise, leaving the emulator to pick each region's lines by
their centres. Boxes of PDF pages are scaled from the rendered page to the emulator's page.

Hazards: an engine error reaches the emulator as a ``DocumentError`` raised by ``recognize``;
the task ends in ``Error`` (with the emulator's generic message until its ``process`` maps a
recognizer's ``DocumentError`` to the task's message). The recogniser cannot tell the
resource: regions sent to RecognizeImage (which ignores them) would still be cut out; the
daemon's client sends regions only in regions mode. ``stop()`` ends the engine first, so
recognitions in progress end at once (their tasks fail) instead of holding the emulator's
slots: stop the daemon's polling before stopping the service. Tasks live only as long as the
server: a daemon stopping in embedded mode queues its in-flight files again without counting
the lost tasks against ``max_attempts``; after a crash, ``Service``'s start-up reconciliation
queues them again and the lost tasks do count (a file that crashes the engine must run out).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from types import TracebackType

import structlog

from ocrwatch.emulator import (
    Box,
    Emulator,
    EmulatorConfig,
    Line,
    PageText,
    Recognition,
    ResultShape,
)
from ocrwatch.emulator.document import Document, DocumentError, Page
from ocrwatch.engine import (
    DEFAULT_MAX_PIXELS,
    EngineError,
    EngineOptions,
    EnginePool,
    PageResult,
    check_language,
    engine_name,
    missing_modules,
    supported_languages,
)
from ocrwatch.engine import Box as EngineBox
from ocrwatch.engine.pool import DEFAULT_PAGE_TIMEOUT_SECONDS
from ocrwatch.formats import Target
from ocrwatch.model import Credentials, DsrMode, RecognitionSettings, Region

__all__ = [
    "EmbeddedService",
    "EngineRecognizer",
    "check_language",
    "missing_modules",
    "supported_languages",
]

log = structlog.get_logger(__name__)
HOST = "127.0.0.1"
# The modes that only find text (lines straight across the page); every other one analyses
# the page's structure (columns and blocks), as the default ``Regions`` does.
_NO_STRUCTURE_ANALYSIS = frozenset(
    {
        DsrMode.NO_DSR_NO_FILTER,
        DsrMode.TEXT_DETECTOR,
        DsrMode.LINE_DETECTOR,
        DsrMode.POLYGONAL_TEXT_DETECTOR,
    }
)


class EngineRecognizer:
    """The emulator's ``Recognizer``, backed by an ``EnginePool`` (thread-safe as the pool is)."""

    def __init__(self, pool: EnginePool) -> None:
        self._pool = pool

    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        options = EngineOptions(
            rotate_degrees=settings.rotate,
            skew_correct=settings.make_skew_correct,
            upsample=settings.make_upsampling,
            binarize=settings.make_binarization,
            contrast_correct=settings.make_contrast_correction,
            regions=_engine_regions(document, settings.regions),
            language=settings.language,
            find_blocks=settings.dsr_mode not in _NO_STRUCTURE_ANALYSIS,
        )
        try:
            result = self._pool.recognize(document.data, options)
        except EngineError as exc:
            raise DocumentError(str(exc)) from exc
        if len(result.pages) != len(document.pages):
            raise DocumentError(
                f"The local OCR engine found {len(result.pages)} pages where the document "
                f"has {len(document.pages)}"
            )
        return Recognition(
            pages=tuple(
                _page_text(found, page)
                for found, page in zip(result.pages, document.pages, strict=True)
            )
        )


def _engine_regions(document: Document, regions: tuple[Region, ...]) -> tuple[EngineBox, ...]:
    """Regions the engine may read one by one: only disjoint ones on a one-page image."""
    if not regions or document.format == "PDF" or len(document.pages) != 1:
        return ()
    boxes = tuple(
        EngineBox(
            left=region.rect.top_left_x,
            top=region.rect.top_left_y,
            right=region.rect.bottom_right_x,
            bottom=region.rect.bottom_right_y,
        )
        for region in sorted(regions, key=lambda r: r.order)
    )
    for first, second in itertools.combinations(boxes, 2):
        if (
            first.left < second.right
            and second.left < first.right
            and first.top < second.bottom
            and second.top < first.bottom
        ):
            return ()  # overlapping: one line would be found twice
    return boxes


def _page_text(found: PageResult, page: Page) -> PageText:
    scale_x = page.width_px / max(found.width_px, 1)
    scale_y = page.height_px / max(found.height_px, 1)
    lines = tuple(
        Line(
            text=line.text,
            box=Box(
                left=round(line.box.left * scale_x),
                top=round(line.box.top * scale_y),
                right=round(line.box.right * scale_x),
                bottom=round(line.box.bottom * scale_y),
            ),
        )
        for line in found.lines
    )
    return PageText(width_px=page.width_px, height_px=page.height_px, lines=lines)


class EmbeddedService:
    """A private Aspose-compatible server on 127.0.0.1 with the local engine behind it.

    Use as a context manager, or ``start()``/``stop()``. ``base_url`` and ``credentials`` are
    valid while it runs; the credentials are new random values on every start.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        page_timeout_seconds: float = DEFAULT_PAGE_TIMEOUT_SECONDS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self._pool = EnginePool(
            workers=workers, page_timeout_seconds=page_timeout_seconds, max_pixels=max_pixels
        )
        self._max_pixels = max_pixels
        self._lifecycle = threading.Lock()
        self._emulator: Emulator | None = None
        self._credentials: Credentials | None = None

    supported_languages = staticmethod(supported_languages)

    @property
    def pool(self) -> EnginePool:
        return self._pool

    @property
    def is_running(self) -> bool:
        return self._emulator is not None

    @property
    def base_url(self) -> str:
        if self._emulator is None:
            raise RuntimeError("the embedded service is not running; call start() first")
        return self._emulator.base_url

    @property
    def credentials(self) -> Credentials:
        if self._credentials is None:
            raise RuntimeError("the embedded service is not running; call start() first")
        return self._credentials

    def start(self) -> None:
        """Start the engine (waiting for its models) and the server; idempotent."""
        with self._lifecycle:
            if self._emulator is not None:
                return
            self._pool.start()
            credentials = Credentials(
                client_id=f"embedded-{secrets.token_urlsafe(9)}",
                client_secret=secrets.token_urlsafe(32),
            )
            emulator = Emulator(
                EmulatorConfig(
                    host=HOST,
                    port=0,
                    credentials=credentials,
                    processing_seconds=(0.0, 0.0),
                    slots=self._pool.workers,
                    recognizer=EngineRecognizer(self._pool),
                    max_pixels=self._max_pixels,
                    target=Target.ENGINE,  # every format and page the engine reads
                    result_shape=ResultShape(ocr_system=engine_name()),
                )
            )
            try:
                emulator.start()
            except BaseException:
                self._pool.stop()
                raise
            self._emulator, self._credentials = emulator, credentials
        log.info("embedded_service_started", base_url=emulator.base_url)

    def stop(self) -> None:
        """Stop the engine workers, then the server; idempotent."""
        with self._lifecycle:
            emulator, self._emulator = self._emulator, None
            self._credentials = None
            if emulator is None:
                return
            self._pool.stop()
            emulator.stop()
        log.info("embedded_service_stopped")

    def __enter__(self) -> EmbeddedService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
