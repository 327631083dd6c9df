"""Pages with known text in real layouts, and the measures the engine's reading is held to.

Rendered with Pillow and a real TrueType font (see ``test_engine_accuracy.font``): a two-column
article, a body column with a sidebar, a table, the same page turned by right angles, and a
large sparse 1-bit page. ``word_order_similarity`` is 2 x the longest common subsequence of
the two word sequences over their total length (1.0: the same words in the same order; a
page read with its columns interleaved line by line scores about 0.5-0.75).
``word_recall`` is the share of the true words found, in any order.
"""

from __future__ import annotations

import io
import re
from collections import Counter

from PIL import Image, ImageDraw
from test_engine_accuracy import font

LEFT_COLUMN = (
    "The river festival returns to the old harbour this summer after a break of two years. "
    "Organisers expect more than eight thousand visitors over the three days, and the "
    "council has agreed to close the quay road to traffic from Friday morning. Local "
    "bakeries will sell bread from stalls along the water, and the rowing club offers short "
    "trips for children every afternoon. Parking near the station is limited, so visitors "
    "are asked to come by bus or by bicycle."
)
RIGHT_COLUMN = (
    "A new library opened its doors in the north district on Monday with a reading room for "
    "sixty people and a small garden. The building was once a textile warehouse, and the "
    "architects kept its brick walls and tall windows. Members can borrow up to twelve books "
    "at a time, and the opening hours run until nine in the evening on weekdays. A repair "
    "cafe meets in the basement on the first Saturday of each month."
)
SIDEBAR = (
    "Opening hours: Monday to Friday from nine to nine, Saturday from ten to four. "
    "Entry is free for members and guests."
)
TITLE = "City News and Notes"
FOOTER = "Page 4 of 12"
TABLE_ROWS = (
    ("Item", "Qty", "Price"),
    ("Paper A4 box", "12", "4.50"),
    ("Blue pens", "40", "0.80"),
    ("Stapler", "2", "7.25"),
    ("Folders red", "25", "1.10"),
    ("Ink cartridge", "3", "21.90"),
)

_FONT_PX = 22
_LINE_PX = 36


def wrapped(text: str, *, width_px: int, font_px: int = _FONT_PX) -> list[str]:
    """``text`` broken into lines no wider than ``width_px`` in the test font."""
    face = font(font_px)
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and face.getlength(candidate) > width_px:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _draw_lines(
    draw: ImageDraw.ImageDraw, lines: list[str], *, x: int, y: int, font_px: int = _FONT_PX
) -> int:
    face = font(font_px)
    for line in lines:
        draw.text((x, y), line, font=face, fill=0)
        y += round(font_px * _LINE_PX / _FONT_PX)
    return y


def two_column_page() -> tuple[Image.Image, str]:
    """A4 at 150 dpi: a full-width title, two columns of prose, a footer; and its true text."""
    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    _draw_lines(draw, [TITLE], x=100, y=100, font_px=40)
    left = wrapped(LEFT_COLUMN, width_px=480)
    right = wrapped(RIGHT_COLUMN, width_px=480)
    _draw_lines(draw, left, x=100, y=220)
    _draw_lines(draw, right, x=660, y=220)
    _draw_lines(draw, [FOOTER], x=560, y=1600)
    truth = "\n".join([TITLE, *left, *right, FOOTER])
    return image, truth


def sidebar_page() -> tuple[Image.Image, str]:
    """A wide body column with a narrow boxed sidebar on its right; and its true text."""
    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    _draw_lines(draw, [TITLE], x=100, y=100, font_px=40)
    body = wrapped(f"{LEFT_COLUMN} {RIGHT_COLUMN}", width_px=700)
    side = wrapped(SIDEBAR, width_px=260, font_px=20)
    _draw_lines(draw, body, x=100, y=220)
    draw.rectangle((860, 205, 1160, 260 + 33 * len(side)), outline=0, width=2)
    _draw_lines(draw, side, x=880, y=230, font_px=20)
    truth = "\n".join([TITLE, *body, *side])
    return image, truth


def table_page() -> tuple[Image.Image, str]:
    """A heading, a paragraph, then a three-column table; its true text row by row."""
    image = Image.new("L", (1240, 900), 255)
    draw = ImageDraw.Draw(image)
    face = font(_FONT_PX)
    intro = wrapped("Order list for the office, checked by the purchasing team.", width_px=900)
    y = _draw_lines(draw, intro, x=100, y=100) + 40
    for row in TABLE_ROWS:
        for x, cell in zip((100, 600, 900), row, strict=True):
            draw.text((x, y), cell, font=face, fill=0)
        y += 50
    truth = "\n".join([*intro, *(" ".join(row) for row in TABLE_ROWS)])
    return image, truth


def huge_sparse_page(*, side_px: int = 12000) -> tuple[Image.Image, str]:
    """A 1-bit ``side_px`` square page (a large-format 300 dpi scan) with a few lines of text."""
    image = Image.new("1", (side_px, side_px), 1)
    draw = ImageDraw.Draw(image)
    lines = [
        "Site plan of the east wing, drawing 17",
        "Revision C approved by the structural engineer",
        "All dimensions in millimetres unless noted",
    ]
    face = font(48)
    y = side_px // 3
    for line in lines:
        draw.text((side_px // 4, y), line, font=face, fill=0)
        y += 80
    draw.text((side_px - 3000, side_px - 600), "Sheet 3 of 9", font=face, fill=0)
    return image, "\n".join([*lines, "Sheet 3 of 9"])


def a3_scan_page() -> tuple[Image.Image, str]:
    """An A3 sheet scanned at 600 dpi in black and white (7016 x 9921, 70 MP), 8 pt text."""
    image = Image.new("1", (7016, 9921), 1)
    draw = ImageDraw.Draw(image)
    lines = [
        "Minutes of the parish council meeting",
        "held on the third of March in the village hall",
        "The footpath by the mill will be repaired",
        "before the summer fair in June",
    ]
    face = font(66)  # 8 pt at 600 dpi: too small to read on the page shrunk whole
    y = 1200
    for line in lines:
        draw.text((700, y), line, font=face, fill=0)
        y += 160
    draw.text((5400, 9300), "Sheet 3 of 9", font=face, fill=0)
    return image, "\n".join([*lines, "Sheet 3 of 9"])


def g4_tiff_bytes(image: Image.Image, *, dpi: int) -> bytes:
    """One CCITT Group 4 TIFF page, as document scanners write black and white."""
    buffer = io.BytesIO()
    image.convert("1").save(buffer, format="TIFF", compression="group4", dpi=(dpi, dpi))
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(150, 150))
    return buffer.getvalue()


def pdf_bytes(image: Image.Image, *, dpi: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PDF", resolution=dpi)
    return buffer.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def common_subsequence(first: list[str], second: list[str]) -> int:
    """The length of the longest common subsequence of two word lists: words kept in order."""
    previous = [0] * (len(second) + 1)
    for left in first:
        current = [0]
        for j, right in enumerate(second, start=1):
            current.append(previous[j - 1] + 1 if left == right else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


def word_order_similarity(found: str, truth: str) -> float:
    first, second = words(found), words(truth)
    if not first or not second:
        return 0.0
    return 2 * common_subsequence(first, second) / (len(first) + len(second))


def word_recall(found: str, truth: str) -> float:
    expected = Counter(words(truth))
    seen = Counter(words(found))
    return sum(min(count, seen[word]) for word, count in expected.items()) / sum(expected.values())
