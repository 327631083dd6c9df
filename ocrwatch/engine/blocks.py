"""Page segmentation: columns and blocks from the detected fragments, read in order (pure).

The local equivalent of the service's document structure analysis (``dsrMode``). The page is
cut recursively, XY-cut style, in the frame of its own skew:

- *Rows*: the fragments are cut into horizontal slabs wherever no fragment spans a gap across
  the text. A row's *free space* is what its fragments leave empty along the text, edges
  included.
- *Bands*: consecutive rows are merged while neither loses a gutter (free space at least
  ``GUTTER_UNITS`` text heights wide with its text on both sides): the rows of two columns
  (even where one column has a blank line) share their gutter, and a full-width title or
  footer would close it, so it stands alone, in place.
- *Columns*: a band is split at all its shared gutters, or else at its widest one, when every
  side reads like a column of prose: at least ``MIN_COLUMN_UNITS`` text heights wide, with
  fragments that mostly fill that width. The cells of a table or the prices of a receipt
  are narrow and short, so a table's band is not split and its rows stay rows. Each side is
  cut again the same way.

A band that is not split is a block, read line by line (``layout.lines_of``); blocks come top
to bottom, and the blocks of a split band left column first. Units are the median fragment
height, so the rules hold at any resolution.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ocrwatch.engine.layout import Fragment, LaidOutLine, Placed, lines_of, place

GUTTER_UNITS = 0.5  # a gap between columns, in fragment heights (text plus margins)
MIN_COLUMN_UNITS = 8.0  # a column of prose is at least this wide, in text heights
MIN_COLUMN_FILL = 0.5  # the median fragment spans at least this share of its column

Interval = tuple[float, float]


@dataclass(slots=True)
class _Band:
    members: list[Placed]
    free: list[Interval]


def read_in_blocks(fragments: Sequence[Fragment]) -> tuple[LaidOutLine, ...]:
    """``fragments`` as lines, block by block in reading order (see the module docstring)."""
    placed = place(fragments)
    if not placed:
        return ()
    unit = statistics.median(2 * item.half_height for item in placed)
    return tuple(line for block in _blocks(placed, unit=unit) for line in lines_of(block))


def _blocks(placed: list[Placed], *, unit: float) -> list[list[Placed]]:
    if len(placed) < 2:
        return [placed]
    extent = (min(item.start for item in placed), max(item.end for item in placed))
    blocks: list[list[Placed]] = []
    plain: list[Placed] = []  # consecutive bands that are not split read as one block
    for band in _bands(placed, extent=extent, unit=unit):
        sides = _columns(band, unit=unit)
        if sides is None:
            plain.extend(band.members)
            continue
        if plain:
            blocks.append(plain)
            plain = []
        for side in sides:
            blocks.extend(_blocks(side, unit=unit))
    if plain:
        blocks.append(plain)
    return blocks


def _rows(placed: list[Placed]) -> list[list[Placed]]:
    rows: list[list[Placed]] = []
    bottom = float("-inf")
    for item in sorted(placed, key=lambda member: member.top):
        if rows and item.top < bottom:
            rows[-1].append(item)
        else:
            rows.append([item])
        bottom = max(bottom, item.bottom) if len(rows[-1]) > 1 else item.bottom
    return rows


def _bands(placed: list[Placed], *, extent: Interval, unit: float) -> list[_Band]:
    bands: list[_Band] = []
    for row in _rows(placed):
        free = _wide(_free(row, extent=extent), unit=unit)
        if bands:
            last = bands[-1]
            shared = _wide(_intersection(last.free, free), unit=unit)
            # A row joins the band when neither loses a gutter it has text on both sides of:
            # a title across the columns starts a band of its own, a blank in one column
            # does not.
            gutters = [gap for gap in free if _is_between(gap, row)]
            gutters += [gap for gap in last.free if _is_between(gap, last.members)]
            if all(any(_overlap(gap, other) > 0 for other in shared) for gap in gutters):
                last.members.extend(row)
                last.free = shared
                continue
        bands.append(_Band(members=list(row), free=free))
    return bands


def _columns(band: _Band, *, unit: float) -> list[list[Placed]] | None:
    """The band's columns: split at every gutter, else at its widest good one, or None."""
    gutters = [gap for gap in band.free if _is_between(gap, band.members)]
    if len(gutters) > 1:
        sides = _split(band.members, gutters)
        if all(_is_column(side, unit=unit) for side in sides):
            return sides
    for gap in sorted(gutters, key=lambda interval: interval[0] - interval[1]):
        sides = _split(band.members, [gap])
        if all(_is_column(side, unit=unit) for side in sides):
            return sides
    return None


def _split(members: list[Placed], gutters: list[Interval]) -> list[list[Placed]]:
    """``members`` on each side of the ``gutters``, left to right (empty sides dropped)."""
    cuts = sorted((low + high) / 2 for low, high in gutters)
    sides: list[list[Placed]] = [[] for _ in range(len(cuts) + 1)]
    for item in members:
        sides[sum(1 for cut in cuts if item.along >= cut)].append(item)
    return [side for side in sides if side]


def _is_column(side: list[Placed], *, unit: float) -> bool:
    width = max(item.end for item in side) - min(item.start for item in side)
    if width < MIN_COLUMN_UNITS * unit:
        return False
    return statistics.median(2 * item.half_width for item in side) >= MIN_COLUMN_FILL * width


def _free(row: list[Placed], *, extent: Interval) -> list[Interval]:
    """The parts of ``extent`` along the text that no fragment of ``row`` covers."""
    free: list[Interval] = []
    cursor = extent[0]
    for item in sorted(row, key=lambda member: member.start):
        if item.start > cursor:
            free.append((cursor, item.start))
        cursor = max(cursor, item.end)
    if cursor < extent[1]:
        free.append((cursor, extent[1]))
    return free


def _intersection(first: list[Interval], second: list[Interval]) -> list[Interval]:
    shared: list[Interval] = []
    for low_a, high_a in first:
        for low_b, high_b in second:
            low, high = max(low_a, low_b), min(high_a, high_b)
            if high > low:
                shared.append((low, high))
    return shared


def _overlap(first: Interval, second: Interval) -> float:
    return min(first[1], second[1]) - max(first[0], second[0])


def _wide(intervals: list[Interval], *, unit: float) -> list[Interval]:
    return [gap for gap in intervals if gap[1] - gap[0] >= GUTTER_UNITS * unit]


def _is_between(gap: Interval, members: list[Placed]) -> bool:
    """Whether ``members`` have text on both sides of ``gap`` (not just at one edge)."""
    return any(item.end <= gap[0] for item in members) and any(
        item.start >= gap[1] for item in members
    )
