"""Turn a file's bytes into page images, one at a time, refusing bombs before decoding them.

An image's size is read from its header and checked against ``max_pixels`` before any pixel is
decoded; Pillow's own bomb guard is set to the same limit, so a file that lies in its header
is still stopped. A PDF page is rendered at ``PDF_DPI`` (150-200 dpi reads ordinary print
well) unless that would exceed ``max_pixels``, in which case the page is rendered smaller;
a page that would still be too large, or too small to read, is an error. Transparent images
are laid on white, as if printed. Which formats are read, and whether every frame is a page
(TIFF) or only the first is (a GIF or WebP animation), is ``ocrwatch.formats``'s table.

Runs in the worker process only. Every problem with the input is an ``EngineInputError``
with a message for the user.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from ocrwatch import formats
from ocrwatch.engine.failures import EngineInputError
from ocrwatch.engine.imaging import Pixels

PDF_DPI = 170  # an A4 or Letter page stays under the recogniser's 2000-pixel side at this
_MIN_PDF_DPI = 50
_POINTS_PER_INCH = 72
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_TARGET = formats.Target.ENGINE


def is_pdf(data: bytes) -> bool:
    return formats.sniff(data[: formats.SNIFF_BYTES]) is formats.Format.PDF


def read_pages(data: bytes, *, max_pixels: int) -> Iterator[Pixels]:
    """The pages of ``data`` as BGR images, in order."""
    kind = formats.sniff(data[: formats.SNIFF_BYTES])
    entry = formats.spec(kind)
    if (
        entry is None
        or formats.delivery(kind, pages=1, target=_TARGET) is not formats.Delivery.AS_IS
    ):
        names = ", ".join(formats.pillow_formats(target=_TARGET))
        raise EngineInputError(
            f"The file format is not supported or the file is damaged: expected {names} or PDF"
        )
    if kind is formats.Format.PDF:
        yield from _pdf_pages(data, max_pixels=max_pixels)
    else:
        pillow = entry.pillow or ""
        yield from _image_pages(
            data, pillow=pillow, every_page=entry.all_pages, max_pixels=max_pixels
        )


def _image_pages(
    data: bytes, *, pillow: str, every_page: bool, max_pixels: int
) -> Iterator[Pixels]:
    """Each page (a TIFF's every page; another format's first frame), decoded one at a time."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow raises past twice this, warns past it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pillow])
            pages = int(getattr(image, "n_frames", 1)) if every_page else 1
    except Image.DecompressionBombError as exc:
        raise EngineInputError(f"The image is too large to process: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise EngineInputError("The image cannot be decoded: the file is damaged") from exc
    except _DECODE_ERRORS as exc:
        raise EngineInputError(f"The image cannot be decoded: {exc}") from exc
    for index in range(pages):
        yield _page(image, index=index, max_pixels=max_pixels)


def _page(image: Image.Image, *, index: int, max_pixels: int) -> Pixels:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(index)
            width, height = image.size
            if width * height > max_pixels:
                where = f"page {index + 1} of " if index else ""
                raise EngineInputError(
                    f"The image is too large to process: {where}{width}x{height} pixels "
                    f"exceeds the limit of {max_pixels} pixels"
                )
            rgb = _on_white(ImageOps.exif_transpose(image))
    except _DECODE_ERRORS as exc:
        where = f"page {index + 1}: " if index else ""
        raise EngineInputError(f"The image cannot be decoded: {where}{exc}") from exc
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR).astype(np.uint8, copy=False)


def _on_white(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")


def _pdf_pages(data: bytes, *, max_pixels: int) -> Iterator[Pixels]:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise EngineInputError(f"The PDF document cannot be read: {exc}") from exc
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                yield _render(page, index=index, max_pixels=max_pixels)
            finally:
                page.close()
    finally:
        document.close()


def _render(page: pdfium.PdfPage, *, index: int, max_pixels: int) -> Pixels:
    width_pt, height_pt = page.get_size()
    area_in2 = max(width_pt, 1.0) * max(height_pt, 1.0) / _POINTS_PER_INCH**2
    dpi = min(PDF_DPI, math.floor(math.sqrt(max_pixels / area_in2)))
    if dpi < _MIN_PDF_DPI:
        raise EngineInputError(
            f"PDF page {index + 1} is too large to process: {width_pt:.0f}x{height_pt:.0f} "
            f"points cannot be rendered at {_MIN_PDF_DPI} dpi within {max_pixels} pixels"
        )
    try:
        bitmap = page.render(scale=dpi / _POINTS_PER_INCH, fill_color=(255, 255, 255, 255))
        rgb = bitmap.to_pil().convert("RGB")
    except pdfium.PdfiumError as exc:
        raise EngineInputError(f"PDF page {index + 1} cannot be rendered: {exc}") from exc
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR).astype(np.uint8, copy=False)
