"""Pages too large to read whole: cut into tiles at a readable scale, read, and put together.

The detector shrinks any image to ``reader.MAX_SIDE_PX`` on its longer side. On a large page
(a poster, an engineering drawing, a scan at 600 dpi of a large sheet) that shrinks the text
below what the models can see, and the page comes out empty. Such a page is read in tiles of
at most ``TILE_PX`` at a scale that makes its text about ``TARGET_TEXT_PX`` high (never above
the page's own resolution). Tiles overlap by ``OVERLAP_PX``, so a line cut by one tile's edge
is whole in its neighbour; of fragments found twice the whole (not cut by a tile's edge) or
else the larger is kept. A line longer than the overlap is whole in no tile: its cut pieces
are joined and the line is read again from one crop of the page. Tiles without ink are
not read, so a sparse sheet costs little.

A ``TileSource`` hands out one tile's pixels at a time: a BGR image (``ScaledImage``), a large
image kept decoded in its own mode (``rasters.TiledImage``), or a PDF page rendered tile by
tile (``sources.TiledPdfPage``), so the whole page is never held at reading resolution.
Memory is then one tile, whatever the page's size.

Runs in the worker process only (OpenCV, NumPy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from ocrwatch.engine.imaging import Pixels
from ocrwatch.engine.values import Box

# The detector misses a lone short line on a large blank image (1400 px square and up), but
# not on a 1024 px one; so tiles are no larger, and a page where nothing at all was found is
# looked at again in tiles before it is called blank.
TILE_PX = 1024
OVERLAP_PX = 256  # about eight lines at the target size
TARGET_TEXT_PX = 32.0  # fragment height (text plus the detector's margin) to read at
READABLE_TEXT_PX = 24.0  # fragments lower than this after the detector's shrink get lost
_INK_LEVEL = 128  # a pixel darker than this is ink
_MIN_INK_PIXELS = 24  # a tile with fewer dark pixels holds specks at most
_DUPLICATE_SHARE = 0.5  # a fragment this much inside a larger one is the same text
_EDGE_PX = 3  # a fragment this close to a tile's edge inside the page was cut by it
_SAME_LINE_SHARE = 0.5  # pieces overlapping this much across the text are one line


class TileSource(Protocol):
    """A page readable tile by tile, in its reading pixels."""

    @property
    def width_px(self) -> int: ...

    @property
    def height_px(self) -> int: ...

    def may_have_ink(self, box: Box) -> bool:
        """False only when ``box`` is surely blank (a cheap look before rendering it)."""
        ...

    def tile(self, box: Box) -> Pixels:
        """The BGR pixels of ``box`` (reading pixels)."""
        ...


class ScaledImage:
    """A decoded page read at ``scale`` (at most 1.0) of its size, one tile at a time."""

    def __init__(self, image: Pixels, *, scale: float) -> None:
        self._image = image
        self.scale = min(1.0, scale)
        self.width_px = max(1, math.floor(image.shape[1] * self.scale))
        self.height_px = max(1, math.floor(image.shape[0] * self.scale))

    def may_have_ink(self, box: Box) -> bool:
        return True  # the tile itself is at hand: ``has_ink`` looks at it

    def tile(self, box: Box) -> Pixels:
        left, top = math.floor(box.left / self.scale), math.floor(box.top / self.scale)
        right = min(self._image.shape[1], math.ceil(box.right / self.scale))
        bottom = min(self._image.shape[0], math.ceil(box.bottom / self.scale))
        crop = self._image[top:bottom, left:right]
        if self.scale == 1.0:
            return np.ascontiguousarray(crop)
        size = (max(1, box.width), max(1, box.height))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)


def reading_scale(median_text_px: float | None) -> float:
    """The scale that brings text of ``median_text_px`` to the target height (at most 1)."""
    if median_text_px is None or median_text_px <= 0:
        return 1.0  # nothing was seen: read at the page's own resolution
    return min(1.0, TARGET_TEXT_PX / median_text_px)


def grid(width_px: int, height_px: int) -> Iterator[Box]:
    """Overlapping tiles covering a ``width_px`` x ``height_px`` page, row by row."""
    for top in _starts(height_px):
        for left in _starts(width_px):
            yield Box(
                left=left,
                top=top,
                right=min(width_px, left + TILE_PX),
                bottom=min(height_px, top + TILE_PX),
            )


def _starts(length: int) -> list[int]:
    if length <= TILE_PX:
        return [0]
    count = math.ceil((length - OVERLAP_PX) / (TILE_PX - OVERLAP_PX))
    step = (length - TILE_PX) / (count - 1)
    return [round(index * step) for index in range(count)]


def has_ink(tile: Pixels) -> bool:
    """Whether ``tile`` has enough dark pixels to hold any text."""
    darkest = tile.min(axis=2) if tile.ndim == 3 else tile
    return int(np.count_nonzero(darkest < _INK_LEVEL)) >= _MIN_INK_PIXELS


def is_cut(quad: npt.NDArray[np.float64], tile: Box, *, width_px: int, height_px: int) -> bool:
    """Whether a fragment found in ``tile`` touches one of its edges inside the page."""
    low, high = quad.min(axis=0), quad.max(axis=0)
    return bool(
        (tile.left > 0 and low[0] <= tile.left + _EDGE_PX)
        or (tile.top > 0 and low[1] <= tile.top + _EDGE_PX)
        or (tile.right < width_px and high[0] >= tile.right - _EDGE_PX)
        or (tile.bottom < height_px and high[1] >= tile.bottom - _EDGE_PX)
    )


def pieces_of_lines(quads: Sequence[npt.NDArray[np.float64]], cut: Sequence[bool]) -> list[Box]:
    """The bounds of each line found in pieces: cut fragments side by side on one line.

    A line longer than the tiles' overlap is whole in no tile; its pieces (each cut by its
    tile's edge, overlapping where the tiles do) are read again as one crop.
    """
    members = [index for index, is_cut_piece in enumerate(cut) if is_cut_piece]
    low = {index: quads[index].min(axis=0) for index in members}
    high = {index: quads[index].max(axis=0) for index in members}
    group_of = {index: index for index in members}

    def root(index: int) -> int:
        while group_of[index] != index:
            index = group_of[index]
        return index

    for position, first in enumerate(members):
        for second in members[position + 1 :]:
            across = min(high[first][1], high[second][1]) - max(low[first][1], low[second][1])
            shorter = min(high[first][1] - low[first][1], high[second][1] - low[second][1])
            along = min(high[first][0], high[second][0]) - max(low[first][0], low[second][0])
            # Side by side, each reaching past the other; not the same piece seen by two tiles
            # one above the other, nor a piece inside a longer one.
            staggered = _is_left_of(low[first][0], high[first][0], low[second][0], high[second][0])
            staggered |= _is_left_of(low[second][0], high[second][0], low[first][0], high[first][0])
            if across >= _SAME_LINE_SHARE * shorter and along > -_EDGE_PX and staggered:
                group_of[root(second)] = root(first)
    groups: dict[int, list[int]] = {}
    for index in members:
        groups.setdefault(root(index), []).append(index)
    whole = [quads[index] for index, is_cut_piece in enumerate(cut) if not is_cut_piece]
    lines = []
    for group in groups.values():
        if len(group) > 1 and not _is_covered([quads[index] for index in group], whole):
            left, top = (min(low[index][axis] for index in group) for axis in (0, 1))
            right, bottom = (max(high[index][axis] for index in group) for axis in (0, 1))
            lines.append(
                Box(
                    max(0, math.floor(left)),
                    max(0, math.floor(top)),
                    math.ceil(right),
                    math.ceil(bottom),
                )
            )
    return lines


def _is_left_of(left_a: float, right_a: float, left_b: float, right_b: float) -> bool:
    return left_a < left_b - _EDGE_PX and right_a < right_b - _EDGE_PX


def _is_covered(
    pieces: Sequence[npt.NDArray[np.float64]], whole: Sequence[npt.NDArray[np.float64]]
) -> bool:
    """Whether one uncut fragment already spans all of ``pieces`` (a tile saw the line whole)."""
    left = min(float(piece[:, 0].min()) for piece in pieces)
    right = max(float(piece[:, 0].max()) for piece in pieces)
    middle = statistics.fmean(float(piece[:, 1].mean()) for piece in pieces)
    return any(
        float(quad[:, 0].min()) <= left + _EDGE_PX
        and float(quad[:, 0].max()) >= right - _EDGE_PX
        and float(quad[:, 1].min()) <= middle <= float(quad[:, 1].max())
        for quad in whole
    )


def distinct(quads: Sequence[npt.NDArray[np.float64]], *, cut: Sequence[bool]) -> list[int]:
    """Indexes of the fragments to keep: of two that cover the same text, the whole or larger."""
    if not quads:
        return []
    low = np.array([quad.min(axis=0) for quad in quads])
    high = np.array([quad.max(axis=0) for quad in quads])
    areas = np.prod(np.maximum(high - low, 1e-6), axis=1)
    kept: list[int] = []
    for index in sorted(range(len(quads)), key=lambda item: (cut[item], -areas[item])):
        if kept:
            others = np.array(kept)
            overlap = np.prod(
                np.clip(
                    np.minimum(high[others], high[index]) - np.maximum(low[others], low[index]),
                    0.0,
                    None,
                ),
                axis=1,
            )
            if float(overlap.max()) > _DUPLICATE_SHARE * float(areas[index]):
                continue
        kept.append(int(index))
    return sorted(kept)
