"""Read what the emulator needs from a PDF (pikepdf), and render its pages (pdfium).

A ``PdfPageRef`` is one page as it is shown: its visible box in user space (the CropBox within
the MediaBox, which need not start at the origin), the clockwise turn it is shown with (its
``/Rotate`` plus any turn asked for since), and the document's bytes so it can be rendered
when something needs its pixels. Nothing is decoded at load time: a hundred-page scan costs
no memory until a page is rendered, and the embedded engine renders pages itself.

Each page gets a pixel grid: the resolution of its largest image shaped like the page (so a
scanned page has its scan's pixels), 150 dpi for pages without one, never under 72 or over
600 dpi (physical: a ``/UserUnit`` counts), and less where the page would pass the pixel
limit. pdfium is not thread-safe and the emulator's slots are threads:
every call into it holds ``_PDFIUM_LOCK``. Encrypted PDFs are refused, as the service's
clients must send them decrypted; qpdf repairs what damage it can, and anything else is a
``PdfError``.
"""

from __future__ import annotations

import io
import math
import re
import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pikepdf
from PIL import Image

_DEFAULT_PX_PER_PT = 150 / 72  # pages drawn without images
_MIN_PX_PER_PT = 1.0  # 72 dpi: a page image of lower resolution is shown at least this finely
_MAX_PX_PER_PT = 600 / 72
_SCAN_SHAPE_TOLERANCE = 0.05  # a scan's aspect ratio is the page's, give or take a margin
_MAX_TREE_DEPTH = 64
_LETTER_BOX = (0.0, 0.0, 612.0, 792.0)  # what a page without any MediaBox is taken to be
_PDFIUM_LOCK = threading.Lock()
_QPDF_INPUT = re.compile(r"^stream <[^>]*>:\s*")


class PdfError(Exception):
    """The bytes are not a PDF the emulator can use; the message is shown to the client."""


@dataclass(frozen=True, slots=True)
class PdfPageRef:
    """One page of ``data`` as shown; ``box`` is (x0, y0, x1, y1) in user space, x0 < x1."""

    index: int
    box: tuple[float, float, float, float]
    own_rotation: int  # the page's /Rotate, clockwise, 0/90/180/270
    rotation: int  # how it is shown now: /Rotate plus the turns asked for since
    data: bytes = field(repr=False, compare=False)

    @property
    def shown_size_pt(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        width, height = x1 - x0, y1 - y0
        return (height, width) if self.rotation % 180 else (width, height)

    def turned(self, degrees: int) -> PdfPageRef:
        return replace(self, rotation=(self.rotation + degrees) % 360)


@dataclass(frozen=True, slots=True)
class PdfPage:
    ref: PdfPageRef
    width_px: int
    height_px: int


@dataclass(frozen=True, slots=True)
class PdfInfo:
    pages: tuple[PdfPage, ...]
    subject: str | None


def inherited(page: pikepdf.Dictionary, key: str) -> object:
    """The page's ``key``, or the nearest one up its page tree (``/Resources``, the boxes and
    ``/Rotate`` are inherited); None if no node has it."""
    node: object = page
    for _ in range(_MAX_TREE_DEPTH):
        if not isinstance(node, pikepdf.Dictionary):
            return None
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _rectangle(value: object) -> tuple[float, float, float, float] | None:
    if not isinstance(value, pikepdf.Array) or len(value) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    return box if box[2] - box[0] > 0 and box[3] - box[1] > 0 else None


def _visible_box(page: pikepdf.Dictionary) -> tuple[float, float, float, float]:
    media = _rectangle(inherited(page, "/MediaBox")) or _LETTER_BOX
    crop = _rectangle(inherited(page, "/CropBox"))
    if crop is None:
        return media
    clipped = (max(media[0], crop[0]), max(media[1], crop[1]))
    clipped_end = (min(media[2], crop[2]), min(media[3], crop[3]))
    if clipped_end[0] <= clipped[0] or clipped_end[1] <= clipped[1]:
        return media  # a CropBox outside the MediaBox: viewers fall back to the MediaBox
    return (*clipped, *clipped_end)


def _rotation(page: pikepdf.Dictionary) -> int:
    value = inherited(page, "/Rotate")
    try:
        degrees = int(value) if isinstance(value, int | pikepdf.Object) else 0
    except (TypeError, ValueError):
        return 0
    return degrees % 360 if degrees % 90 == 0 else 0


def _user_unit(page: pikepdf.Dictionary) -> float:
    """How many points one unit of the page's user space is (``/UserUnit``, PDF 1.6)."""
    value = page.get("/UserUnit")
    try:
        unit = float(value) if isinstance(value, int | float | Decimal) else 1.0
    except (TypeError, ValueError):
        return 1.0
    return unit if math.isfinite(unit) and unit > 0 else 1.0


def _px_per_unit(page: pikepdf.Page, box: tuple[float, float, float, float]) -> float:
    """Pixels per unit of user space: the resolution of the page's scan (its largest image
    shaped like the page), or the default for pages without one (a logo on a page of vector
    text does not set the grid). The limits are physical, so a ``/UserUnit`` scales them."""
    points = _user_unit(page.obj)
    best_area, best = 0, _DEFAULT_PX_PER_PT * points
    width_units, height_units = box[2] - box[0], box[3] - box[1]
    for image in page.get_images().values():
        # pikepdf hands integers back as int, though its stubs say Object.
        width: object = image.get("/Width")
        height: object = image.get("/Height")
        if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
            continue
        if abs((width / height) / (width_units / height_units) - 1) > _SCAN_SHAPE_TOLERANCE:
            continue
        if width * height > best_area:
            best_area = width * height
            best = max(width / width_units, height / height_units)
    return min(max(best, _MIN_PX_PER_PT * points), _MAX_PX_PER_PT * points)


def _pixel_size(ref: PdfPageRef, px_per_unit: float, *, max_pixels: int) -> tuple[int, int]:
    width_units, height_units = ref.shown_size_pt
    if width_units * height_units * px_per_unit**2 > max_pixels:
        px_per_unit = math.sqrt(max_pixels / (width_units * height_units))
    width = max(round(width_units * px_per_unit), 1)
    height = max(round(height_units * px_per_unit), 1)
    # Rounding up, or a side held at one pixel, can pass the limit: the longer side gives way.
    if width * height > max_pixels:
        if width >= height:
            width = max(max_pixels // height, 1)
        else:
            height = max(max_pixels // width, 1)
    return width, height


def _message(exc: Exception) -> str:
    # qpdf names its input ("stream <_io.BytesIO object at 0x...>: "); the client never saw it.
    return _QPDF_INPUT.sub("", str(exc)) or type(exc).__name__


def read_pdf(data: bytes, *, max_pixels: int) -> PdfInfo:
    """Every page (in order) with its pixel grid, and the Info ``/Subject``."""
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError as exc:
        raise PdfError("encrypted PDF documents are not supported") from exc
    except (pikepdf.PdfError, ValueError, OSError) as exc:
        raise PdfError(_message(exc)) from exc
    with pdf:
        if pdf.is_encrypted:
            raise PdfError("encrypted PDF documents are not supported")
        pages = []
        try:
            for index, page in enumerate(pdf.pages):
                box = _visible_box(page.obj)
                rotation = _rotation(page.obj)
                ref = PdfPageRef(index, box, rotation, rotation, data)
                width, height = _pixel_size(ref, _px_per_unit(page, box), max_pixels=max_pixels)
                pages.append(PdfPage(ref=ref, width_px=width, height_px=height))
        except (pikepdf.PdfError, RuntimeError) as exc:
            raise PdfError(_message(exc)) from exc
        if not pages:
            raise PdfError("the PDF has no readable pages")
        info = pdf.trailer.get("/Info")
        subject = info.get("/Subject") if isinstance(info, pikepdf.Dictionary) else None
        return PdfInfo(
            pages=tuple(pages),
            subject=str(subject) if isinstance(subject, pikepdf.String) else None,
        )


def render_page(ref: PdfPageRef, *, width_px: int, height_px: int) -> Image.Image:
    """The page as shown (its rotation included), on white, exactly ``width_px`` x ``height_px``."""
    # pdfium is only loaded for a page whose pixels are wanted (ImagePNG, a recognizer that
    # reads pixels): the embedded engine renders in its own processes.
    import pypdfium2 as pdfium  # noqa: PLC0415

    width_pt, _ = ref.shown_size_pt
    extra_turn = (ref.rotation - ref.own_rotation) % 360
    with _PDFIUM_LOCK:
        try:
            # qpdf repairs files pdfium refuses, so even opening can fail here.
            document = pdfium.PdfDocument(ref.data)
        except pdfium.PdfiumError as exc:
            raise PdfError(f"page {ref.index + 1} cannot be rendered: {exc}") from exc
        try:
            page = document[ref.index]
            try:
                bitmap = page.render(
                    scale=width_px / width_pt,
                    rotation=extra_turn,
                    fill_color=(255, 255, 255, 255),
                )
                try:
                    image: Image.Image = bitmap.to_pil().convert("RGB")
                finally:
                    # Freed here, under the lock, not by a finalizer on some other thread.
                    bitmap.close()
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise PdfError(f"page {ref.index + 1} cannot be rendered: {exc}") from exc
        finally:
            document.close()
    if image.size != (width_px, height_px):  # pdfium rounds the bitmap's size its own way
        image = image.resize((width_px, height_px))
    return image
