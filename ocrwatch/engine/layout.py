"""Put detected text fragments into reading order: lines top to bottom, words left to right.

The detector returns one quadrilateral per fragment, in no reliable order: on a skewed page a
line's right end sorts above the next line's left end, and a table row comes back as one
fragment per cell. So: estimate the page's skew from the fragments' own orientation (the
width-weighted median of their baseline angles), project every fragment's centre onto the axis
across the text, cluster fragments whose extents on that axis overlap into lines, then sort
the lines along that axis and the fragments of a line along the text.

Fragments side by side at the same height always make one line, so a table's row stays a row;
columns of text are separated before that, by ``blocks.read_in_blocks``. Pure functions over
plain numbers; the skew is in degrees, positive when the text runs
downhill to the right (image y grows downwards).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left

MAX_SKEW_DEGREES = 45.0
_MIN_OVERLAP = 0.5  # share of the smaller fragment's height two fragments of a line overlap
_MAX_SAME_LINE_ALONG_OVERLAP = 0.3  # fragments overlapping more along the text are two lines


@dataclass(frozen=True, slots=True)
class Fragment:
    text: str
    quad: Quad


@dataclass(frozen=True, slots=True)
class LaidOutLine:
    """One line's text (fragments joined by single spaces) and its axis-aligned bounds."""

    text: str
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True, slots=True)
class Placed:
    """A fragment measured in the page's text frame (along and across the skewed lines)."""

    fragment: Fragment
    along: float  # centre, along the text direction
    across: float  # centre, across it (grows downwards)
    half_width: float
    half_height: float

    @property
    def start(self) -> float:
        return self.along - self.half_width

    @property
    def end(self) -> float:
        return self.along + self.half_width

    @property
    def top(self) -> float:
        return self.across - self.half_height

    @property
    def bottom(self) -> float:
        return self.across + self.half_height


def _length(start: Point, end: Point) -> float:
    return math.hypot(end[0] - start[0], end[1] - start[1])


def estimate_skew_degrees(quads: Sequence[Quad]) -> float:
    """The width-weighted median baseline angle of the fragments wider than they are tall."""
    weighted: list[tuple[float, float]] = []
    for quad in quads:
        top_left, top_right, bottom_right, bottom_left = quad
        width = (_length(top_left, top_right) + _length(bottom_left, bottom_right)) / 2
        height = (_length(top_left, bottom_left) + _length(top_right, bottom_right)) / 2
        if width < 1.5 * height or width <= 0:
            continue  # a single character or a vertical run says little about the skew
        dx = (top_right[0] - top_left[0]) + (bottom_right[0] - bottom_left[0])
        dy = (top_right[1] - top_left[1]) + (bottom_right[1] - bottom_left[1])
        angle = math.degrees(math.atan2(dy, dx))
        if abs(angle) <= MAX_SKEW_DEGREES:
            weighted.append((angle, width))
    if not weighted:
        return 0.0
    weighted.sort()
    half = sum(weight for _, weight in weighted) / 2
    running = 0.0
    for angle, weight in weighted:
        running += weight
        if running >= half:
            return angle
    return weighted[-1][0]


def _place(fragment: Fragment, *, cos_a: float, sin_a: float) -> Placed:
    xs = [point[0] for point in fragment.quad]
    ys = [point[1] for point in fragment.quad]
    along_values = [x * cos_a + y * sin_a for x, y in zip(xs, ys, strict=True)]
    across_values = [-x * sin_a + y * cos_a for x, y in zip(xs, ys, strict=True)]
    return Placed(
        fragment=fragment,
        along=(min(along_values) + max(along_values)) / 2,
        across=(min(across_values) + max(across_values)) / 2,
        half_width=(max(along_values) - min(along_values)) / 2,
        half_height=max((max(across_values) - min(across_values)) / 2, 0.5),
    )


def _fits(line: list[Placed], candidate: Placed) -> float | None:
    """How far ``candidate`` sits from ``line`` across the text, or None if it is not on it."""
    top = min(member.across - member.half_height for member in line)
    bottom = max(member.across + member.half_height for member in line)
    overlap = min(bottom, candidate.across + candidate.half_height) - max(
        top, candidate.across - candidate.half_height
    )
    smaller = min(candidate.half_height, (bottom - top) / 2) * 2
    if overlap < _MIN_OVERLAP * smaller:
        return None
    for member in line:
        along_overlap = min(
            member.along + member.half_width, candidate.along + candidate.half_width
        ) - max(member.along - member.half_width, candidate.along - candidate.half_width)
        if along_overlap > _MAX_SAME_LINE_ALONG_OVERLAP * 2 * min(
            member.half_width, candidate.half_width
        ):
            return None  # side by side along the text, so stacked lines that touch
    return abs((top + bottom) / 2 - candidate.across)


def place(fragments: Sequence[Fragment]) -> list[Placed]:
    """The non-blank ``fragments``, measured along and across the page's estimated skew."""
    kept = [fragment for fragment in fragments if fragment.text.strip()]
    skew = math.radians(estimate_skew_degrees([fragment.quad for fragment in kept]))
    cos_a, sin_a = math.cos(skew), math.sin(skew)
    return [_place(fragment, cos_a=cos_a, sin_a=sin_a) for fragment in kept]


def group_lines(fragments: Sequence[Fragment]) -> tuple[LaidOutLine, ...]:
    """Order ``fragments`` into lines of text (see the module docstring)."""
    return lines_of(place(fragments))


def lines_of(placed: Sequence[Placed]) -> tuple[LaidOutLine, ...]:
    """Placed fragments grouped into lines, the lines in order down the page."""
    lines: list[list[Placed]] = []
    for candidate in sorted(placed, key=lambda item: item.across):
        best: tuple[float, list[Placed]] | None = None
        # Only recent lines can still overlap: candidates arrive in order down the page.
        for line in reversed(lines[-4:]):
            distance = _fits(line, candidate)
            if distance is not None and (best is None or distance < best[0]):
                best = (distance, line)
        if best is None:
            lines.append([candidate])
        else:
            best[1].append(candidate)
    lines.sort(key=lambda line: sum(member.across for member in line) / len(line))
    return tuple(_laid_out(line) for line in lines)


def _laid_out(line: list[Placed]) -> LaidOutLine:
    members = sorted(line, key=lambda member: member.along)
    points = [point for member in members for point in member.fragment.quad]
    return LaidOutLine(
        text=" ".join(" ".join(member.fragment.text.split()) for member in members),
        left=min(point[0] for point in points),
        top=min(point[1] for point in points),
        right=max(point[0] for point in points),
        bottom=max(point[1] for point in points),
    )
