"""Reading order from detected fragments: skew estimate, line grouping, word order (pure)."""

from __future__ import annotations

import math
import random

import pytest

from ocrwatch.engine.blocks import read_in_blocks
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


def column_lines(
    left: float, top: float, count: int, *, width: float, prefix: str
) -> list[Fragment]:
    """``count`` fragments of prose ``width`` wide, one per line, 40 px apart."""
    return [
        Fragment(f"{prefix}{index}", quad(left, top + 40 * index, width - (index % 3) * 30, 28))
        for index in range(count)
    ]


def texts(fragments: list[Fragment]) -> list[str]:
    return [line.text for line in read_in_blocks(fragments)]


def test_two_columns_under_a_title_are_read_one_after_the_other() -> None:
    title = [Fragment("title", quad(50, 20, 1000, 40))]
    left = column_lines(50, 100, 6, width=450, prefix="L")
    right = column_lines(560, 100, 5, width=450, prefix="R")
    footer = [Fragment("footer", quad(450, 500, 150, 28))]
    fragments = title + left + right + footer
    random.Random(2).shuffle(fragments)
    expected = ["title", *(f"L{i}" for i in range(6)), *(f"R{i}" for i in range(5)), "footer"]
    assert texts(fragments) == expected
    # Without block analysis the same fragments run straight across, as before.
    assert [line.text for line in group_lines(fragments)][1] == "L0 R0"


def test_a_body_column_with_a_narrow_sidebar_reads_the_sidebar_after_it() -> None:
    body = column_lines(50, 100, 8, width=700, prefix="B")
    side = column_lines(820, 110, 3, width=260, prefix="S")
    assert texts(side + body) == [*(f"B{i}" for i in range(8)), *(f"S{i}" for i in range(3))]


def test_a_blank_line_in_one_column_does_not_end_the_columns() -> None:
    left = [f for i, f in enumerate(column_lines(50, 100, 8, width=450, prefix="L")) if i != 3]
    right = column_lines(560, 100, 8, width=450, prefix="R")
    order = texts(right + left)
    assert order == [*(f"L{i}" for i in range(8) if i != 3), *(f"R{i}" for i in range(8))]


@pytest.mark.parametrize("degrees", [0.0, 4.0])
def test_a_table_keeps_its_rows_even_with_wide_gaps_between_cells(degrees: float) -> None:
    cells = []
    for row in range(5):
        for column, (x, width) in enumerate(((50, 260), (600, 60), (900, 90))):
            cells.append(
                Fragment(f"r{row}c{column}", quad(x, 100 + 40 * row, width, 28, degrees=degrees))
            )
    random.Random(3).shuffle(cells)
    assert texts(cells) == [f"r{row}c0 r{row}c1 r{row}c2" for row in range(5)]


def test_a_receipt_keeps_each_price_beside_its_item() -> None:
    items = column_lines(50, 100, 6, width=420, prefix="item")
    prices = [Fragment(f"{index}.99", quad(700, 100 + 40 * index, 70, 28)) for index in range(6)]
    assert texts(items + prices) == [f"item{index} {index}.99" for index in range(6)]


def test_blocks_of_nothing_or_one_fragment() -> None:
    assert read_in_blocks([]) == ()
    assert texts([Fragment("alone", quad(10, 10, 100, 30))]) == ["alone"]


def test_three_narrow_columns_then_a_paragraph_then_two_columns() -> None:
    # Gutters of 20 px between fragments 28 px high: the detector's boxes carry margins, so
    # a real gutter of one em comes out narrower than a line is high.
    title = [Fragment("title", quad(50, 20, 400, 40))]
    first = [
        *column_lines(50, 100, 5, width=300, prefix="A"),
        *column_lines(370, 100, 5, width=300, prefix="B"),
        *column_lines(690, 100, 4, width=300, prefix="C"),
    ]
    paragraph = [Fragment(f"P{index}", quad(50, 320 + 40 * index, 940, 28)) for index in range(2)]
    second = [
        *column_lines(50, 420, 3, width=450, prefix="D"),
        *column_lines(540, 420, 3, width=450, prefix="E"),
    ]
    fragments = title + first + paragraph + second
    random.Random(5).shuffle(fragments)
    expected = ["title"]
    expected += [f"{prefix}{index}" for prefix, count in (("A", 5), ("B", 5), ("C", 4))
                 for index in range(count)]  # fmt: skip
    expected += ["P0", "P1"]
    expected += [f"{prefix}{index}" for prefix in "DE" for index in range(3)]
    assert texts(fragments) == expected
