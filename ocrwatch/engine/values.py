"""The engine's plain values: what a request asks for and what recognition returns.

These cross the pipe between the daemon and a worker process as JSON, so every field is a
string, a number, a boolean or a tuple of them; ``to_wire``/``from_wire`` are exact inverses.
Boxes are in pixels of the page *after* the quarter turns of ``rotate_degrees`` (for a PDF:
of the page rendered at ``EngineResult.pages[i]``'s size): every other transform the engine
applies (a non-right-angle rotation, deskewing, upsampling) is mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in page pixels: left and top inclusive, right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    def __post_init__(self) -> None:
        if self.right < self.left or self.bottom < self.top:
            raise ValueError(f"box corners out of order: {self!r}")

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How to recognise one file; the Aspose settings the engine honours, in its own words.

    ``rotate_degrees`` turns the page clockwise first: a multiple of 90 exactly, and the boxes
    then refer to the turned page (as the emulator turns it); any other angle by resampling,
    with the boxes mapped back onto the page as sent. ``regions`` are rectangles of that page
    (turned or not), recognised one by one in the given order.
    ``language`` must be one of ``supported_languages()``. ``find_blocks`` reads columns and
    blocks one after another (the service's document structure analysis); off, lines are read
    straight across the page. ``detect_orientation`` turns a page found lying on its side or
    upside down upright before reading it; it applies only when ``rotate_degrees`` is 0 (a
    rotation the caller gives is applied as given).
    """

    rotate_degrees: int = 0
    skew_correct: bool = True
    upsample: bool = False
    binarize: bool = False
    contrast_correct: bool = False
    regions: tuple[Box, ...] = field(default_factory=tuple)
    language: str = "English"
    find_blocks: bool = True
    detect_orientation: bool = True

    @property
    def quarter_turns(self) -> int:
        """Clockwise right-angle turns applied exactly (0 when the angle is not one)."""
        return (self.rotate_degrees // 90) % 4 if self.rotate_degrees % 90 == 0 else 0

    @property
    def resampled_degrees(self) -> float:
        """The clockwise angle to resample by, in [-180, 180); 0 for right angles."""
        if self.rotate_degrees % 90 == 0:
            return 0.0
        return float((self.rotate_degrees + 180) % 360 - 180)

    def to_wire(self) -> dict[str, Any]:
        return {
            "rotate_degrees": self.rotate_degrees,
            "skew_correct": self.skew_correct,
            "upsample": self.upsample,
            "binarize": self.binarize,
            "contrast_correct": self.contrast_correct,
            "regions": [_box_to_wire(box) for box in self.regions],
            "language": self.language,
            "find_blocks": self.find_blocks,
            "detect_orientation": self.detect_orientation,
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> EngineOptions:
        return cls(
            rotate_degrees=int(value["rotate_degrees"]),
            skew_correct=bool(value["skew_correct"]),
            upsample=bool(value["upsample"]),
            binarize=bool(value["binarize"]),
            contrast_correct=bool(value["contrast_correct"]),
            regions=tuple(_box_from_wire(item) for item in value["regions"]),
            language=str(value["language"]),
            find_blocks=bool(value["find_blocks"]),
            detect_orientation=bool(value["detect_orientation"]),
        )


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text, words joined by single spaces, with the box around all of them."""

    text: str
    box: Box


@dataclass(frozen=True, slots=True)
class PageResult:
    width_px: int
    height_px: int
    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_wire(self) -> dict[str, Any]:
        return {
            "width_px": self.width_px,
            "height_px": self.height_px,
            "lines": [[line.text, *_box_to_wire(line.box)] for line in self.lines],
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> PageResult:
        lines = tuple(
            TextLine(text=str(item[0]), box=_box_from_wire(item[1:])) for item in value["lines"]
        )
        return cls(width_px=int(value["width_px"]), height_px=int(value["height_px"]), lines=lines)


@dataclass(frozen=True, slots=True)
class EngineResult:
    """One ``PageResult`` per page, in order (an image has one page)."""

    pages: tuple[PageResult, ...]

    @property
    def text(self) -> str:
        """Pages joined by form feeds, lines by newlines: the emulator's convention."""
        return "\f".join(page.text for page in self.pages)


def _box_to_wire(box: Box) -> list[int]:
    return [box.left, box.top, box.right, box.bottom]


def _box_from_wire(value: list[Any]) -> Box:
    left, top, right, bottom = (int(number) for number in value)
    return Box(left=left, top=top, right=right, bottom=bottom)
