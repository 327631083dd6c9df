"""A raster page too large to hold as BGR: kept decoded in its own mode, cut into tiles.

A scanner's A3 sheet at 600 dpi in black and white is 70 million pixels. Decoded, Pillow holds
it at one byte a pixel (280 MB as RGB, and as much again for each working copy). So a large
page stays in the mode it was decoded in, and only what is read is turned into BGR: one
tile, or one band of rows at a time while a small overview of the page is made. Its memory
is then the decoded page plus one tile, whatever the sheet's size.

A page turned a quarter turn is never turned whole: each tile's box is mapped onto the page
as it is stored, that crop turned. Runs in the worker process only (Pillow, OpenCV).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from ocrwatch.engine.imaging import Pixels, turn_quarters
from ocrwatch.engine.values import Box

_BAND_ROWS = 512  # rows turned into BGR at once while an overview is made


class TiledImage:
    """A decoded page read at ``scale`` (at most 1.0), turned ``quarter_turns`` clockwise.

    A ``tiles.TileSource``: boxes are in reading pixels, the page turned and scaled. Cropping
    costs nothing next to recognising, so blank tiles are found on the tile itself
    (``tiles.has_ink``), not on an overview.
    """

    def __init__(self, image: Image.Image, *, quarter_turns: int = 0, scale: float = 1.0) -> None:
        self.image = image  # loaded, upright, in its decoded mode
        self.quarter_turns = quarter_turns % 4
        self.scale = min(1.0, scale)
        stored_width, stored_height = image.size
        width, height = (stored_height, stored_width) if self.quarter_turns % 2 else image.size
        self._turned_size = (width, height)
        self.width_px = max(1, math.floor(width * self.scale))
        self.height_px = max(1, math.floor(height * self.scale))

    def turned(self, quarter_turns: int) -> TiledImage:
        return TiledImage(self.image, quarter_turns=quarter_turns, scale=self.scale)

    def scaled(self, scale: float) -> TiledImage:
        return TiledImage(self.image, quarter_turns=self.quarter_turns, scale=scale)

    def may_have_ink(self, box: Box) -> bool:
        return True

    def tile(self, box: Box) -> Pixels:
        width, height = self._turned_size
        left = min(width - 1, math.floor(box.left / self.scale))
        top = min(height - 1, math.floor(box.top / self.scale))
        right = max(left + 1, min(width, math.ceil(box.right / self.scale)))
        bottom = max(top + 1, min(height, math.ceil(box.bottom / self.scale)))
        crop = self.image.crop(self._stored(left, top, right, bottom))
        pixels = turn_quarters(bgr(crop), self.quarter_turns)
        if self.scale == 1.0:
            return pixels
        size = (max(1, box.width), max(1, box.height))
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)

    def overview(self, max_side_px: int) -> tuple[Pixels, float]:
        """The whole page shrunk to at most ``max_side_px`` a side, and its scale to the page.

        Made band by band, so the page is never in BGR whole. ``scale`` is not applied: the
        overview is of the page at its own resolution, turned.
        """
        stored_width, stored_height = self.image.size
        factor = min(1.0, max_side_px / max(stored_width, stored_height))
        out_width = max(1, round(stored_width * factor))
        bands = []
        for top in range(0, stored_height, _BAND_ROWS):
            bottom = min(stored_height, top + _BAND_ROWS)
            rows = max(1, round(bottom * factor) - round(top * factor))
            band = bgr(self.image.crop((0, top, stored_width, bottom)))
            bands.append(cv2.resize(band, (out_width, rows), interpolation=cv2.INTER_AREA))
        small = turn_quarters(np.vstack(bands).astype(np.uint8, copy=False), self.quarter_turns)
        return small, factor

    def _stored(self, left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
        """The box (in turned pixels) on the page as it is stored."""
        width, height = self.image.size
        if self.quarter_turns == 1:
            return top, height - right, bottom, height - left
        if self.quarter_turns == 2:
            return width - right, height - bottom, width - left, height - top
        if self.quarter_turns == 3:
            return width - bottom, left, width - top, right
        return left, top, right, bottom


def bgr(image: Image.Image) -> Pixels:
    """``image`` laid on white as if printed, as a new BGR array."""
    pixels = np.array(on_white(image))
    cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels)
    return pixels.astype(np.uint8, copy=False)


def on_white(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")
