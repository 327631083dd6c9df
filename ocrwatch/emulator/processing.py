"""Process one task: check the document, recognise it, and render the requested results.

Runs on a slot's worker thread. Every input problem becomes an ``Outcome`` with an error
message (the task ends in ``Error`` and GET still answers 200), never an exception:

- RecognizePdf takes a PDF only; every other resource refuses a PDF;
- undecodable bytes, unsupported formats (see ``ocrwatch.formats``; a multi-page TIFF is
  refused standing in for the cloud), more than ``max_pixels`` pixels;
- a region that does not lie inside the (rotated) image.

Settings honoured: ``Rotate`` by multiples of 90 degrees (the pages are turned clockwise before
recognition, so the reported geometry and any output image follow), ``resultType`` and
``regions``. The preprocessing switches, language and DSR settings are accepted and passed to
the recognizer, which may ignore them (the fixture recognizer does).

RecognizeRegions gives one entry per region and format, regions sorted by ``order`` (stable);
a region holds the lines whose box centre lies inside its rectangle, with coordinates relative
to the region. Without regions the whole image is one region. The trial resource masks about
one word in ten with asterisks of the same length, chosen by a hash of the file and the word's
position, so resubmitting the same file masks the same words.

``ResultShape`` gives the variants the real service is documented (or suspected) to answer:
other ``type`` strings, JSON as an object, one Pdf or Hocr result per page.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ocrwatch import formats
from ocrwatch.emulator.config import ResultShape
from ocrwatch.emulator.document import (
    Document,
    DocumentError,
    Page,
    load_document,
    rotate_document,
    sniff_format,
)
from ocrwatch.emulator.formats import render
from ocrwatch.emulator.recognizer import Box, Line, PageText, Recognition, Recognizer
from ocrwatch.emulator.wire import Resource, Submission
from ocrwatch.model import RecognitionSettings, Rect, Region, ResultFile, ResultFormat

_WORD = re.compile(r"\S+")
_PLAIN = ResultShape()
TRIAL_MASK_MODULUS = 10  # one word in ten, on average


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task ended: results (Completed) or an error message (Error)."""

    results: tuple[ResultFile, ...] = ()
    error: str | None = None


def is_masked(sha256: str, word_index: int) -> bool:
    digest = hashlib.sha256(f"{sha256}:{word_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % TRIAL_MASK_MODULUS == 0


def mask_trial_words(recognition: Recognition, *, sha256: str) -> Recognition:
    """Replace the words the trial hides with asterisks, counting words over the document."""
    counter = 0

    def mask(match: re.Match[str]) -> str:
        nonlocal counter
        word = match.group()
        hidden = is_masked(sha256, counter)
        counter += 1
        return "*" * len(word) if hidden else word

    pages = tuple(
        replace(
            page,
            lines=tuple(replace(line, text=_WORD.sub(mask, line.text)) for line in page.lines),
        )
        for page in recognition.pages
    )
    return Recognition(pages=pages)


def _check_kind(document_bytes: bytes, resource: Resource) -> None:
    is_pdf = sniff_format(document_bytes) == "PDF"
    if resource is Resource.RECOGNIZE_PDF and not is_pdf:
        raise DocumentError("RecognizePdf expects a PDF document; this file is not a PDF")
    if resource is not Resource.RECOGNIZE_PDF and is_pdf:
        raise DocumentError(f"{resource.value} expects an image; send PDF files to RecognizePdf")


def _region_page(page: Page, text: PageText, region: Region) -> tuple[Page, PageText]:
    rect = region.rect
    left, top = rect.top_left_x, rect.top_left_y
    lines = []
    for line in text.lines:
        x, y = line.box.centre
        if left <= x < rect.bottom_right_x and top <= y < rect.bottom_right_y:
            box = line.box
            clipped = Box(
                left=max(box.left, left) - left,
                top=max(box.top, top) - top,
                right=min(box.right, rect.bottom_right_x) - left,
                bottom=min(box.bottom, rect.bottom_right_y) - top,
            )
            lines.append(Line(text=line.text, box=clipped))
    width, height = rect.bottom_right_x - left, rect.bottom_right_y - top
    image = None
    if page.image is not None:
        image = page.image.crop((left, top, rect.bottom_right_x, rect.bottom_right_y))
    cropped = Page(width_px=width, height_px=height, points_per_px=page.points_per_px, image=image)
    return cropped, PageText(width_px=width, height_px=height, lines=tuple(lines))


def _check_regions(document: Document, regions: tuple[Region, ...]) -> None:
    page = document.pages[0]
    for index, region in enumerate(regions):
        rect = region.rect
        if rect.bottom_right_x > page.width_px or rect.bottom_right_y > page.height_px:
            raise DocumentError(
                f"Region {index} ({rect.top_left_x}, {rect.top_left_y}, {rect.bottom_right_x}, "
                f"{rect.bottom_right_y}) lies outside the image "
                f"({page.width_px}x{page.height_px} pixels)"
            )


def process(
    submission: Submission,
    *,
    recognizer: Recognizer,
    max_pixels: int,
    target: formats.Target = formats.Target.CLOUD,
    shape: ResultShape = _PLAIN,
) -> Outcome:
    """Run one task to its end; input problems become an error outcome."""
    settings = submission.settings
    try:
        _check_kind(submission.document, submission.resource)
        document = load_document(submission.document, max_pixels=max_pixels, target=target)
        document = rotate_document(document, settings.rotate)
        is_regions = submission.resource is Resource.RECOGNIZE_REGIONS
        if is_regions:
            _check_regions(document, settings.regions)
    except DocumentError as exc:
        return Outcome(error=str(exc))
    try:
        recognition = recognizer.recognize(document, settings=settings)
    except DocumentError as exc:
        # A recognizer's own refusal (an engine timeout, a crash, a language it cannot read)
        # is the task's message, as the service reports processing failures.
        return Outcome(error=str(exc))
    if len(recognition.pages) != len(document.pages):
        return Outcome(error="The recognizer returned a different number of pages")
    if submission.resource.is_trial:
        recognition = mask_trial_words(recognition, sha256=document.sha256)
    try:
        results = _results(document, recognition, settings, is_regions=is_regions, shape=shape)
    except DocumentError as exc:
        # An output the input cannot give: a PDF page pdfium cannot render or qpdf cannot write.
        return Outcome(error=str(exc))
    return Outcome(results=results)


def _results(
    document: Document,
    recognition: Recognition,
    settings: RecognitionSettings,
    *,
    is_regions: bool,
    shape: ResultShape,
) -> tuple[ResultFile, ...]:
    formats = settings.result_type.formats
    if not is_regions:
        return tuple(
            result
            for f in formats
            for result in _format_results(
                f, recognition.pages, document.pages, document=document, shape=shape
            )
        )
    page, text = document.pages[0], recognition.pages[0]
    regions = settings.regions or (Region(rect=Rect(0, 0, page.width_px, page.height_px)),)
    results: list[ResultFile] = []
    for region in sorted(regions, key=lambda r: r.order):
        region_page, region_text = _region_page(page, text, region)
        for f in formats:
            results.extend(
                _format_results(f, [region_text], [region_page], document=document, shape=shape)
            )
    return tuple(results)


def _format_results(
    result_format: ResultFormat,
    texts: Sequence[PageText],
    pages: Sequence[Page],
    *,
    document: Document,
    shape: ResultShape,
) -> list[ResultFile]:
    """The ``results[]`` entries of one format, shaped as ``shape`` says."""
    name = shape.type_name(result_format)
    if shape.pages_apart and result_format in (ResultFormat.PDF, ResultFormat.HOCR):
        return [
            ResultFile(
                type=name,
                data=render(
                    result_format,
                    [text],
                    pages=[page],
                    document=document,
                    ocr_system=shape.ocr_system,
                ),
            )
            for text, page in zip(texts, pages, strict=True)
        ]
    data = render(result_format, texts, pages=pages, document=document, ocr_system=shape.ocr_system)
    if shape.json_object and result_format is ResultFormat.JSON:
        data = json.dumps({"blocks": json.loads(data)}, ensure_ascii=False).encode("utf-8")
    return [ResultFile(type=name, data=data)]
