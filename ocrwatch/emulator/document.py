"""Turn the submitted bytes into a checked document: format, pages, pixels, embedded text.

Everything that makes a task end in ``Error`` because of its input is decided here and raised
as ``DocumentError`` with the message the client will read: an unsupported or undecodable
format, more pixels than the limit. What is supported is the table in ``ocrwatch.formats`` for
the emulator's target: standing in for Aspose Cloud it takes what the cloud takes as it is
(a multi-page TIFF is refused, as the service takes single-page TIFF only); in front of the
local engine (the embedded service) it takes what the engine reads, every page of a TIFF as a
page of the document. Pillow's decompression-bomb check is kept from surfacing as a warning;
the emulator's own ``max_pixels`` (capped by Pillow's hard limit) decides instead; in front of
the engine it is the limit for a colour page, scaled to each page's mode as the engine does.

An image's page is the image as shown: turned (or mirrored) as its EXIF orientation says, as
viewers and the local engine take it, so every coordinate is on the upright page.

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
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from ocrwatch import formats

if TYPE_CHECKING:
    from ocrwatch.emulator.pdfpages import PdfPageRef

TEXT_KEY = "ocr-text"
_PAGE_DESCRIPTION = "ocrwatch-page-description"  # a TIFF page's ImageDescription, on its copy
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> how to show the stored pixels upright, and the clockwise turn that is
# (orientations 2, 4, 5 and 7 mirror).
_EXIF_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # Pillow names the counter-clockwise angle
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_TURNS = {1: 0, 3: 180, 6: 90, 8: 270}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# warnings.catch_warnings changes process-wide state; one opener at a time keeps it consistent.
_PILLOW_WARNINGS_LOCK = threading.Lock()


class DocumentError(Exception):
    """The input cannot be recognised as it is; the message goes to ``error.messages``."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page as shown. Coordinates are pixels of a ``width_px`` x ``height_px`` grid.

    An image's page holds its pixels, turned upright as its EXIF orientation says (viewers
    and the local engine show it so); ``source_turn`` is how far ``image`` is turned clockwise
    from the file's own pixels, or None when it is not merely turned (mirrored, cut), so a PDF
    can show the file's bytes turned. A PDF's page holds ``pdf`` instead, the page of the
    submitted PDF, rendered on that grid only when ``pixels()`` is called.
    """

    width_px: int
    height_px: int
    points_per_px: float  # the page's physical scale, for PDF output
    image: Image.Image | None
    pdf: PdfPageRef | None = None
    source_turn: int | None = None

    def pixels(self) -> Image.Image | None:
        """The page's pixels; a PDF page is rendered (with pdfium) on each call."""
        if self.image is not None or self.pdf is None:
            return self.image
        from ocrwatch.emulator import pdfpages  # noqa: PLC0415  (see _load_pdf)

        try:
            return pdfpages.render_page(self.pdf, width_px=self.width_px, height_px=self.height_px)
        except pdfpages.PdfError as exc:
            raise DocumentError(f"The PDF document cannot be read: {exc}") from exc


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
    image = _open_image(data, kind=kind, max_pixels=max_pixels, target=target)
    frames = [image]
    entry = formats.spec(kind)
    pages = int(getattr(image, "n_frames", 1))
    if entry is not None and entry.all_pages and pages > 1:
        if formats.delivery(kind, pages=pages, target=target) is not formats.Delivery.AS_IS:
            raise DocumentError("Multi-page TIFF images are not supported; send a single-page TIFF")
        frames = _every_page(image, pages=pages, kind=kind, max_pixels=max_pixels, target=target)
    texts = [_embedded_text(frame, kind=kind) for frame in frames]
    return Document(
        format=kind,
        data=data,
        sha256=digest,
        pages=tuple(_image_page(frame) for frame in frames),
        embedded_text=None if all(t is None for t in texts) else "\f".join(t or "" for t in texts),
    )


def _every_page(
    image: Image.Image, *, pages: int, kind: str, max_pixels: int, target: formats.Target
) -> list[Image.Image]:
    """Every page of a multi-page image, each checked and decoded on its own."""
    frames: list[Image.Image] = []
    for index in range(pages):
        try:
            image.seek(index)
            _check_pixels(image, max_pixels=max_pixels, page=index + 1, target=target)
            frame = image.copy()  # decodes this page only
            # A copy is a plain image without the page's TIFF tags: keep its description.
            frame.info[_PAGE_DESCRIPTION] = getattr(image, "tag_v2", {}).get(270)
        except _DECODE_ERRORS as exc:
            raise DocumentError(
                f"Page {index + 1} of the {kind} image cannot be decoded: {exc}"
            ) from exc
        frames.append(frame)
    return frames


def _check_pixels(
    image: Image.Image, *, max_pixels: int, target: formats.Target, page: int = 1
) -> None:
    width, height = image.size
    if target is formats.Target.ENGINE:
        # The engine's limit is on decoded bytes: a 1-bit or grey page may have more pixels.
        max_pixels = formats.pixel_limit(max_pixels, image.mode)
    if width * height > max_pixels:
        where = f"page {page} of " if page > 1 else ""
        raise DocumentError(
            f"The image is too large to process: {where}{width}x{height} pixels "
            f"exceeds the limit of {max_pixels} pixels"
        )


def _open_image(data: bytes, *, kind: str, max_pixels: int, target: formats.Target) -> Image.Image:
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
    _check_pixels(image, max_pixels=max_pixels, target=target)
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise DocumentError(f"The {kind} image cannot be decoded: {exc}") from exc
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (*_DECODE_ERRORS, TypeError):  # a damaged EXIF block: the pixels as stored
        return 1
    return value if isinstance(value, int) and value in _EXIF_TRANSPOSE else 1


def _image_page(image: Image.Image) -> Page:
    orientation = _orientation(image)
    turn = _EXIF_TURNS.get(orientation)
    # Turned here rather than by ImageOps.exif_transpose, which also rewrites the EXIF block
    # and fails on a damaged one.
    method = _EXIF_TRANSPOSE[orientation]
    upright = image if method is None else image.transpose(method)
    dpi = image.info.get("dpi")
    horizontal_dpi = 72.0
    if isinstance(dpi, tuple) and len(dpi) == 2:
        # Orientations 5 to 8 stand the stored rows up: the page's rows are its columns.
        across = dpi[1] if orientation >= 5 else dpi[0]
        horizontal_dpi = float(across) if across else 72.0
    return Page(
        width_px=upright.width,
        height_px=upright.height,
        points_per_px=72.0 / horizontal_dpi if horizontal_dpi > 1 else 1.0,
        image=upright,
        source_turn=turn,
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
    # pikepdf and pdfium cost about 20 MiB of memory once imported: an embedded service that
    # never sees a PDF does not load them.
    from ocrwatch.emulator import pdfpages  # noqa: PLC0415

    try:
        info = pdfpages.read_pdf(data, max_pixels=max_pixels)
    except pdfpages.PdfError as exc:
        raise DocumentError(f"The PDF document cannot be read: {exc}") from exc
    pages = tuple(
        Page(
            width_px=page.width_px,
            height_px=page.height_px,
            points_per_px=page.ref.shown_size_pt[0] / page.width_px,
            image=None,
            pdf=page.ref,
        )
        for page in info.pages
    )
    return Document(format="PDF", data=data, sha256=digest, pages=pages, embedded_text=info.subject)


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
                pdf=None if page.pdf is None else page.pdf.turned(quarter_turns * 90),
                source_turn=None
                if page.source_turn is None
                else (page.source_turn + quarter_turns * 90) % 360,
            )
        )
    return replace(document, pages=tuple(pages))
