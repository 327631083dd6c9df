"""Turn a file's bytes into page images, one at a time, refusing bombs before decoding them.

An image's size is read from its header and checked against ``max_pixels`` before any pixel is
decoded, scaled to its mode (``formats.pixel_limit``: the limit is on decoded bytes, so a
1-bit or grey page may have up to four times a colour page's pixels); Pillow's own bomb guard
is set too, so a file that lies in its header is still stopped. An image over
``WHOLE_IMAGE_PIXELS`` is kept decoded in its own mode and read tile by tile
(``rasters.TiledImage``), never turned into BGR whole. A PDF page is rendered at ``PDF_DPI``
(150-200 dpi reads ordinary print well): whole when small, else tile by tile
(``TiledPdfPage``); past ``TILED_PAGE_FACTOR`` times the limit it is an error. Transparent images
are laid on white, as if printed. Which formats are read, and whether every frame is a page
(TIFF) or only the first is (a GIF or WebP animation), is ``ocrwatch.formats``'s table.

Runs in the worker process only. Every problem with the input is an ``EngineInputError``
with a message for the user.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Iterator

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from ocrwatch import formats
from ocrwatch.engine import rasters
from ocrwatch.engine.failures import EngineInputError
from ocrwatch.engine.imaging import Pixels
from ocrwatch.engine.values import Box

PDF_DPI = 170  # an A4 or Letter page stays under the recogniser's 2000-pixel side at this
TILED_PAGE_FACTOR = 25  # a tiled page may have this many times the pixel limit
# Larger pages (A1 and up at PDF_DPI) are rendered tile by tile, so a worker's memory stays
# near its models' whatever the sheet's size.
WHOLE_PAGE_PIXELS = 16_000_000
# An image larger than this (a sheet larger than A4 or Letter at 600 dpi) is kept decoded in
# its own mode and read tile by tile; smaller ones are read whole, their orientation and skew
# found on the whole page.
WHOLE_IMAGE_PIXELS = 36_000_000
_EXIF_ORIENTATION = 0x0112
_OVERVIEW_PX = 2048  # a tiled page's overview, to skip blank tiles (averaged: thin ink shows)
_PAPER_LEVEL = 250  # an overview pixel darker than this may be ink
_POINTS_PER_INCH = 72
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_TARGET = formats.Target.ENGINE


def is_pdf(data: bytes) -> bool:
    return formats.sniff(data[: formats.SNIFF_BYTES]) is formats.Format.PDF


def read_pages(
    data: bytes, *, max_pixels: int
) -> Iterator[Pixels | TiledPdfPage | rasters.TiledImage]:
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
) -> Iterator[Pixels | rasters.TiledImage]:
    """Each page (a TIFF's every page; another format's first frame), decoded one at a time."""
    # Pillow raises past twice this, warns past it; each page's mode is held to its own below.
    Image.MAX_IMAGE_PIXELS = formats.pixel_limit(max_pixels, "1")
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


def _page(image: Image.Image, *, index: int, max_pixels: int) -> Pixels | rasters.TiledImage:
    """One page: as BGR when small, else decoded in its own mode and read tile by tile."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(index)
            width, height = image.size
            limit = formats.pixel_limit(max_pixels, image.mode)
            if width * height > limit:
                where = f"page {index + 1} of " if index else ""
                raise EngineInputError(
                    f"The image is too large to process: {where}{width}x{height} pixels "
                    f"exceeds the limit of {limit} pixels for its mode ({image.mode})"
                )
            if width * height > WHOLE_IMAGE_PIXELS:
                # Decoded here (its errors are the input's), in its mode: a 1-bit page is a
                # byte a pixel. Valid while this generator is suspended at it, as a PDF page.
                upright = _upright(image)
                upright.load()
                return rasters.TiledImage(upright)
            # One writable copy, turned to BGR in place: a 30 MP page is 90 MB per copy.
            return rasters.bgr(_upright(image))
    except _DECODE_ERRORS as exc:
        where = f"page {index + 1}: " if index else ""
        raise EngineInputError(f"The image cannot be decoded: {where}{exc}") from exc


def _upright(image: Image.Image) -> Image.Image:
    """The image as its EXIF orientation shows it; as stored when that block is damaged."""
    try:
        if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
            return image  # not copied: a large page would be held twice
        return ImageOps.exif_transpose(image)
    except (struct.error, TypeError, KeyError):
        return image


def _pdf_pages(data: bytes, *, max_pixels: int) -> Iterator[Pixels | TiledPdfPage]:
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


def _render(page: pdfium.PdfPage, *, index: int, max_pixels: int) -> Pixels | TiledPdfPage:
    width_pt, height_pt = page.get_size()
    area_in2 = max(width_pt, 1.0) * max(height_pt, 1.0) / _POINTS_PER_INCH**2
    if area_in2 * PDF_DPI**2 > min(max_pixels, WHOLE_PAGE_PIXELS):
        return _tiled(page, index=index, max_pixels=max_pixels, area_in2=area_in2)
    dpi = PDF_DPI
    try:
        bitmap = page.render(scale=dpi / _POINTS_PER_INCH, fill_color=(255, 255, 255, 255))
        rgb = bitmap.to_pil().convert("RGB")
    except pdfium.PdfiumError as exc:
        raise EngineInputError(f"PDF page {index + 1} cannot be rendered: {exc}") from exc
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR).astype(np.uint8, copy=False)


def _tiled(page: pdfium.PdfPage, *, index: int, max_pixels: int, area_in2: float) -> TiledPdfPage:
    """A page too large to render whole at ``PDF_DPI``: rendered tile by tile at that dpi.

    Rendered smaller to fit ``max_pixels`` (as it once was), its text would be too small to
    read. Past ``TILED_PAGE_FACTOR`` times the limit the page is refused: its tiles would take
    longer than any page timeout.
    """
    pixels = area_in2 * PDF_DPI**2
    if pixels > TILED_PAGE_FACTOR * max_pixels:
        width_pt, height_pt = page.get_size()
        raise EngineInputError(
            f"PDF page {index + 1} is too large to process: {width_pt:.0f}x{height_pt:.0f} "
            f"points are {pixels / 1e6:.0f} million pixels at {PDF_DPI} dpi, the least that "
            f"reads ordinary print; the limit is {TILED_PAGE_FACTOR * max_pixels / 1e6:.0f} "
            "million"
        )
    return TiledPdfPage(page=page, index=index, dpi=PDF_DPI)


class TiledPdfPage:
    """An open PDF page, rendered one tile at a time at ``dpi`` (a ``tiles.TileSource``).

    Valid while ``read_pages`` is suspended at it: the page closes when iteration moves on.
    Rendering a tile costs about 0.1 s on a large scan (the renderer decodes the image each
    time), so tiles without ink are found first on one small overview of the page.
    """

    def __init__(
        self, *, page: pdfium.PdfPage, index: int, dpi: int, quarter_turns: int = 0
    ) -> None:
        self.page = page
        self.index = index
        self.dpi = dpi
        self.quarter_turns = quarter_turns % 4  # clockwise, applied by the renderer
        self._overview: tuple[Pixels, float] | None = None

    def turned(self, quarter_turns: int) -> TiledPdfPage:
        return TiledPdfPage(
            page=self.page, index=self.index, dpi=self.dpi, quarter_turns=quarter_turns
        )

    @property
    def _size_pt(self) -> tuple[float, float]:
        width_pt, height_pt = self.page.get_size()
        return (height_pt, width_pt) if self.quarter_turns % 2 else (width_pt, height_pt)

    @property
    def width_px(self) -> int:
        return math.floor(self._size_pt[0] * self.dpi / _POINTS_PER_INCH)

    @property
    def height_px(self) -> int:
        return math.floor(self._size_pt[1] * self.dpi / _POINTS_PER_INCH)

    def may_have_ink(self, box: Box) -> bool:
        """Whether the overview shows anything but paper where ``box`` is."""
        if self._overview is None:
            scale = _OVERVIEW_PX / max(self._size_pt)
            gray = self._rendered(scale=scale, crop=(0.0, 0.0, 0.0, 0.0))
            self._overview = (gray, scale * _POINTS_PER_INCH / self.dpi)
        gray, factor = self._overview
        left, top = (
            max(0, math.floor(box.left * factor) - 1),
            max(0, math.floor(box.top * factor) - 1),
        )
        right, bottom = math.ceil(box.right * factor) + 1, math.ceil(box.bottom * factor) + 1
        region = gray[top:bottom, left:right]
        return region.size > 0 and int(region.min()) < _PAPER_LEVEL

    def tile(self, box: Box) -> Pixels:
        scale = self.dpi / _POINTS_PER_INCH
        width_pt, height_pt = self._size_pt
        # The renderer crops the turned page by the points to cut off each side.
        crop = (
            box.left / scale,
            max(0.0, height_pt - box.bottom / scale),
            max(0.0, width_pt - box.right / scale),
            box.top / scale,
        )
        gray = self._rendered(scale=scale, crop=crop)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR).astype(np.uint8, copy=False)

    def _rendered(self, *, scale: float, crop: tuple[float, float, float, float]) -> Pixels:
        try:
            bitmap = self.page.render(
                scale=scale,
                rotation=90 * self.quarter_turns,
                crop=crop,
                grayscale=True,
                fill_color=(255, 255, 255, 255),
            )
            return np.asarray(bitmap.to_pil().convert("L"), dtype=np.uint8)
        except pdfium.PdfiumError as exc:
            raise EngineInputError(f"PDF page {self.index + 1} cannot be rendered: {exc}") from exc
