"""Tiles for pages too large to read whole: the grid, cut fragments, duplicates (pure geometry)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from ocrwatch.engine.tiles import (
    OVERLAP_PX,
    TILE_PX,
    distinct,
    grid,
    is_cut,
    pieces_of_lines,
    reading_scale,
)
from ocrwatch.engine.values import Box


def rect(left: float, top: float, right: float, bottom: float) -> npt.NDArray[np.float64]:
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=float)


@pytest.mark.parametrize(("width", "height"), [(500, 700), (TILE_PX, 3000), (6800, 6800)])
def test_the_grid_covers_the_page_with_overlapping_tiles(width: int, height: int) -> None:
    boxes = list(grid(width, height))
    covered = np.zeros((height, width), dtype=bool)
    for box in boxes:
        assert box.width <= TILE_PX and box.height <= TILE_PX
        covered[box.top : box.bottom, box.left : box.right] = True
    assert covered.all()
    lefts = sorted({box.left for box in boxes})
    rights = sorted({box.right for box in boxes})
    assert all(right - left >= OVERLAP_PX for left, right in zip(lefts[1:], rights, strict=False))


def test_a_fragment_at_a_tile_edge_inside_the_page_is_cut_but_not_at_the_page_edge() -> None:
    tile = Box(0, 0, 1024, 1024)
    assert is_cut(rect(900, 100, 1023, 130), tile, width_px=3000, height_px=3000)
    assert not is_cut(rect(900, 100, 1023, 130), tile, width_px=1024, height_px=3000)
    assert not is_cut(rect(0, 100, 300, 130), tile, width_px=3000, height_px=3000)


def test_of_a_line_found_twice_the_whole_one_is_kept() -> None:
    whole = rect(100, 100, 700, 130)
    piece = rect(100, 100, 400, 130)  # larger than the other piece below, but cut
    elsewhere = rect(100, 300, 300, 330)
    assert distinct([piece, whole, elsewhere], cut=[True, False, False]) == [1, 2]
    assert distinct([whole, rect(102, 101, 699, 131)], cut=[False, False]) == [0]


def test_the_pieces_of_a_line_cut_by_two_tiles_are_joined() -> None:
    left_piece = rect(500, 100, 1023, 130)  # cut by the first tile's right edge
    right_piece = rect(768, 101, 1400, 131)  # cut by the second tile's left edge
    same_piece_below = rect(500, 100, 1023, 130)  # seen again by the tile below
    (line,) = pieces_of_lines([left_piece, right_piece, same_piece_below], [True, True, True])
    assert (line.left, line.top, line.right, line.bottom) == (500, 100, 1400, 131)
    # One piece seen twice is not a line in pieces; nor are pieces a whole line already spans.
    assert pieces_of_lines([left_piece, same_piece_below], [True, True]) == []
    whole = rect(490, 98, 1410, 133)
    assert pieces_of_lines([left_piece, right_piece, whole], [True, True, False]) == []


def test_the_reading_scale_brings_text_to_the_target_height_never_above_the_page() -> None:
    assert reading_scale(64.0) == pytest.approx(0.5)
    assert reading_scale(10.0) == 1.0
    assert reading_scale(None) == 1.0
