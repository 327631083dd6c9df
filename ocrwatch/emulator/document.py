"""Turn the submitted bytes into a checked document: format, pages, pixels, embedded text.

Everything that makes a task end in ``Error`` because of its input is decided here and raised
as ``DocumentError`` with the message the client will read: an unsupported or undecodable
format, more pixels than the limit. What is supported is the table in ``ocrwatch.formats`` for
the emulator's target: standing in for Aspose Cloud it takes what the cloud takes as it is
(a multi-page TIFF is refused, as the service takes single-page TIFF only); in front of the
local engine (the embedded service) it takes what the engine reads, every page of a TIFF as a
page of the document. Pillow's decompression-bomb check is kept from surfacing as a warning;
the emulator's own ``max_pixels`` (capped by Pillow's hard limit) decides instead.

The ground truth for the fixture recognizer is read from the metadata here too: PNG text chunk
``ocr-text``, JPEG or GIF comment, TIFF ImageDescription, PDF Info ``/Subject``.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, replace

from PIL import Image, UnidentifiedImageError

from ocrwatch import formats
from ocrwatch.emulator.pdfinfo import PdfError, read_pdf

TEXT_KEY = "ocr-text"
_PAGE_DESCRIPTION = "ocrwatch-page-description"  # a TIFF page's ImageDescription, on its copy
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# warnings.catch_warnings changes process-wide state; one opener at a time keeps it consistent.
_PILLOW_WARNINGS_LOCK = threading.Lock()


class DocumentError(Exception):
    """The input cannot be recognised as it is; the message goes to ``error.messages``."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page. Coordinates are pixels of ``image`` (PDF points when there is no image)."""

    width_px: int
    height_px: int
    points_per_px: float  # the page's physical scale, for PDF output
    image: Image.Image | None  # None: a PDF page drawn other than by one JPEG


@dataclass(frozen=True, slots=True)
class Document:
    format: str  # a formats.Format: "PNG", "JPEG", "GIF", "TIFF", "BMP", "PDF", ...
    data: bytes
    sha256: str
    pages: tuple[Page, ...]
    embedded_text: str | None  # ground truth from the metadata; pages split by "\f"


def sniff_format(data: bytes) -> formats.Format | None:
    """The format the leading bytes announce, or None when it is none ``formats`` knows."""
    kind = formats.sniff(data[: formats.SNIFF_BYTES])
    return None if kind is formats.Format.UNKNOWN else kind


def _unsupported(target: formats.Target) -> DocumentError:
    names = [
        str(spec.format)
        for spec in formats.FORMATS
        if formats.delivery(spec.format, pages=1, target=target) is formats.Delivery.AS_IS
    ]
    return DocumentError(
        f"The file format is not supported or the file is damaged: expected {', '.join(names)}"
    )


def load_document(
    data: bytes, *, max_pixels: int, target: formats.Target = formats.Target.CLOUD
) -> Document:
    kind = sniff_format(data)
    digest = hashlib.sha256(data).hexdigest()
    if kind is None or formats.delivery(kind, pages=1, target=target) is not formats.Delivery.AS_IS:
        raise _unsupported(target)
    if kind is formats.Format.PDF:
        return _load_pdf(data, digest=digest, max_pixels=max_pixels)
    image = _open_image(data, kind=kind, max_pixels=max_pixels)
    frames = [image]
    entry = formats.spec(kind)
    pages = int(getattr(image, "n_frames", 1))
    if entry is not None and entry.all_pages and pages > 1:
        if formats.delivery(kind, pages=pages, target=target) is not formats.Delivery.AS_IS:
            raise DocumentError("Multi-page TIFF images are not supported; send a single-page TIFF")
        frames = _every_page(image, pages=pages, kind=kind, max_pixels=max_pixels)
    texts = [_embedded_text(frame, kind=kind) for frame in frames]
    return Document(
        format=kind,
        data=data,
        sha256=digest,
        pages=tuple(_image_page(frame) for frame in frames),
        embedded_text=None if all(t is None for t in texts) else "\f".join(t or "" for t in texts),
    )


def _every_page(image: Image.Image, *, pages: int, kind: str, max_pixels: int) -> list[Image.Image]:
    """Every page of a multi-page image, each checked and decoded on its own."""
    frames: list[Image.Image] = []
    for index in range(pages):
        try:
            image.seek(index)
            _check_pixels(image, max_pixels=max_pixels, page=index + 1)
            frame = image.copy()  # decodes this page only
            # A copy is a plain image without the page's TIFF tags: keep its description.
            frame.info[_PAGE_DESCRIPTION] = getattr(image, "tag_v2", {}).get(270)
        except _DECODE_ERRORS as exc:
            raise DocumentError(
                f"Page {index + 1} of the {kind} image cannot be decoded: {exc}"
            ) from exc
        frames.append(frame)
    return frames


def _check_pixels(image: Image.Image, *, max_pixels: int, page: int = 1) -> None:
    width, height = image.size
    if width * height > max_pixels:
        where = f"page {page} of " if page > 1 else ""
        raise DocumentError(
            f"The image is too large to process: {where}{width}x{height} pixels "
            f"exceeds the limit of {max_pixels} pixels"
        )


def _open_image(data: bytes, *, kind: str, max_pixels: int) -> Image.Image:
    entry = formats.spec(formats.Format(kind))
    pillow = entry.pillow if entry is not None and entry.pillow else kind
    try:
        with _PILLOW_WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pillow])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DocumentError(f"The image is too large to process: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise DocumentError(f"The {kind} image cannot be decoded") from exc
    except _DECODE_ERRORS as exc:
        raise DocumentError(f"The {kind} image cannot be decoded: {exc}") from exc
    _check_pixels(image, max_pixels=max_pixels)
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise DocumentError(f"The {kind} image cannot be decoded: {exc}") from exc
    return image


def _image_page(image: Image.Image) -> Page:
    dpi = image.info.get("dpi")
    horizontal_dpi = float(dpi[0]) if isinstance(dpi, tuple) and dpi and dpi[0] else 72.0
    return Page(
        width_px=image.width,
        height_px=image.height,
        points_per_px=72.0 / horizontal_dpi if horizontal_dpi > 1 else 1.0,
        image=image,
    )


def _embedded_text(image: Image.Image, *, kind: str) -> str | None:
    if kind == "PNG":
        value = image.info.get(TEXT_KEY)
        return value if isinstance(value, str) else None
    if kind in ("JPEG", "GIF"):
        comment = image.info.get("comment")
        return comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else None
    if kind in (formats.Format.TIFF, formats.Format.BIGTIFF):
        description = image.info.get(_PAGE_DESCRIPTION, getattr(image, "tag_v2", {}).get(270))
        if not isinstance(description, str):
            return None
        # Pillow reads ASCII tags as Latin-1; writers that store UTF-8 bytes get them back here.
        try:
            return description.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return description
    return None


def _load_pdf(data: bytes, *, digest: str, max_pixels: int) -> Document:
    try:
        info = read_pdf(data)
    except PdfError as exc:
        raise DocumentError(f"The PDF document cannot be read: {exc}") from exc
    pages: list[Page] = []
    for pdf_page in info.pages:
        image = None
        if pdf_page.jpeg is not None:
            try:
                image = _open_image(pdf_page.jpeg, kind="JPEG", max_pixels=max_pixels)
            except DocumentError:
                image = None  # an unreadable picture still leaves a page of known size
        if image is None:
            width_px, height_px = round(pdf_page.width_pt), round(pdf_page.height_pt)
            pages.append(Page(max(width_px, 1), max(height_px, 1), 1.0, None))
        else:
            scale = pdf_page.width_pt / image.width
            pages.append(Page(image.width, image.height, scale, image))
    return Document(
        format="PDF", data=data, sha256=digest, pages=tuple(pages), embedded_text=info.subject
    )


def rotate_document(document: Document, degrees: int) -> Document:
    """Turn every page clockwise by a multiple of 90 degrees; other angles are ignored."""
    quarter_turns = (degrees // 90) % 4 if degrees % 90 == 0 else 0
    if quarter_turns == 0:
        return document
    transpose = {
        1: Image.Transpose.ROTATE_270,  # Pillow names the counter-clockwise angle
        2: Image.Transpose.ROTATE_180,
        3: Image.Transpose.ROTATE_90,
    }[quarter_turns]
    pages = []
    for page in document.pages:
        swapped = quarter_turns % 2 == 1
        pages.append(
            replace(
                page,
                width_px=page.height_px if swapped else page.width_px,
                height_px=page.width_px if swapped else page.height_px,
                image=None if page.image is None else page.image.transpose(transpose),
            )
        )
    return replace(document, pages=tuple(pages))
