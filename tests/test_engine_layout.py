"""Reading order from detected fragments: skew estimate, line grouping, word order (pure)."""

from __future__ import annotations

import math
import random

import pytest

from ocrwatch.engine.layout import Fragment, Quad, estimate_skew_degrees, group_lines


def quad(left: float, top: float, width: float, height: float, *, degrees: float = 0.0) -> Quad:
    """A ``width`` x ``height`` rectangle at (left, top), turned about the origin (y down)."""
    turn = math.radians(degrees)

    def moved(x: float, y: float) -> tuple[float, float]:
        return (x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn))

    return (
        moved(left, top),
        moved(left + width, top),
        moved(left + width, top + height),
        moved(left, top + height),
    )


def page_of_words(rows: list[list[str]], *, degrees: float, line_px: float = 40) -> list[Fragment]:
    """One fragment per word, 20 px per character, rows ``line_px`` apart, page turned."""
    fragments = []
    for row_index, words in enumerate(rows):
        x = 50.0
        for word in words:
            width = 20.0 * len(word)
            fragments.append(
                Fragment(word, quad(x, 100 + row_index * line_px, width, 28, degrees=degrees))
            )
            x += width + 25
    return fragments


ROWS = [
    ["The", "first", "line", "of", "text"],
    ["then", "the", "second", "line"],
    ["a", "third", "one", "here", "that", "is", "long"],
    ["and", "the", "last"],
]


@pytest.mark.parametrize("degrees", [0.0, 3.0, -7.0, 12.0])
def test_shuffled_fragments_of_a_skewed_page_come_out_in_reading_order(degrees: float) -> None:
    fragments = page_of_words(ROWS, degrees=degrees)
    random.Random(4).shuffle(fragments)
    lines = group_lines(fragments)
    assert [line.text for line in lines] == [" ".join(row) for row in ROWS]


@pytest.mark.parametrize("degrees", [0.0, 4.5, -10.0])
def test_the_skew_is_estimated_from_the_fragments(degrees: float) -> None:
    quads = [fragment.quad for fragment in page_of_words(ROWS, degrees=degrees)]
    assert estimate_skew_degrees(quads) == pytest.approx(degrees, abs=0.01)


def test_short_or_upright_fragments_do_not_sway_the_skew() -> None:
    quads = [quad(0, 0, 400, 30, degrees=2.0), quad(10, 50, 20, 60, degrees=40.0)]
    assert estimate_skew_degrees(quads) == pytest.approx(2.0, abs=0.01)
    assert estimate_skew_degrees([]) == 0.0


def test_the_cells_of_a_table_row_join_into_one_line() -> None:
    cells = [
        Fragment("Qty", quad(300, 102, 60, 26)),
        Fragment("Item", quad(40, 100, 80, 30)),
        Fragment("Price", quad(500, 98, 90, 28)),
        Fragment("12", quad(300, 142, 40, 26)),
        Fragment("Paper A4", quad(40, 140, 160, 30)),
        Fragment("4.50", quad(500, 141, 80, 28)),
    ]
    assert [line.text for line in group_lines(cells)] == ["Item Qty Price", "Paper A4 12 4.50"]


def test_stacked_lines_that_touch_stay_apart() -> None:
    upper = Fragment("upper line", quad(40, 100, 300, 30))
    lower = Fragment("lower line", quad(45, 118, 300, 30))  # overlaps upper by 40%
    assert [line.text for line in group_lines([lower, upper])] == ["upper line", "lower line"]


def test_a_line_box_bounds_all_its_fragments_and_blank_fragments_are_dropped() -> None:
    fragments = [
        Fragment("world", quad(200, 100, 100, 30)),
        Fragment("  ", quad(120, 300, 50, 30)),
        Fragment("hello ", quad(50, 104, 100, 30)),
    ]
    (line,) = group_lines(fragments)
    assert line.text == "hello world"
    assert (line.left, line.top, line.right, line.bottom) == (50, 100, 300, 134)
    assert group_lines([]) == ()
