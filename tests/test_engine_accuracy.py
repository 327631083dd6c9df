"""Accuracy of the local engine on pages rendered here with known text (character error rate).

Four pages: a clean A4 page at 150 dpi, a label (large text on a small image), the A4 page
turned 5 degrees, and a noisy, slightly blurred copy of the A4 page. The CER is the
Levenshtein distance between the recognised and the true text divided by the true text's
length, after collapsing white space. The bar is 2% for the first three; the noisy page is
reported (run with ``-s`` to see every CER) and held to a loose bound only.

The rendering helpers are used by the other engine and embedded-service tests too.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ocrwatch.engine import EnginePool, EngineResult

A4_150_DPI = (1240, 1754)
PAGE_TEXT = """\
The annual meeting of the Harbour Street Residents Association took place
on Thursday 14 March 2024 in the community hall, starting at 7:30 pm.
Forty-two members attended, and the chair opened the meeting by thanking
the volunteers who repaired the playground fence in January.
The treasurer reported a balance of 3,815.40 euros at the end of the year,
after paying 1,240 euros for new benches and 96 euros for insurance.
Members agreed to raise the yearly fee from 12 to 15 euros per household.
A proposal to plant six lime trees along the north side was approved.
The council will be asked to add a crossing near the bakery on Mill Lane.
Several residents complained about parked vans blocking the bus stop.
The next clean-up day is planned for Saturday 20 April, from 9 to 12.
Volunteers should bring gloves; bags and tools will be provided.
Questions about the accounts can be sent to the treasurer by email.
The meeting closed at 9:05 pm with a short reception in the garden.
Minutes recorded by Helen Marsh, secretary of the association."""
LABEL_TEXT = "Parcel 2 of 3\nDeliver to Anna Berg\nHandle with care"

_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A real TrueType font when the system has one, else Pillow's scalable default."""
    for path in _FONT_FILES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def render_text(
    text: str, *, size: tuple[int, int], font_px: int, origin: tuple[int, int], spacing: float
) -> Image.Image:
    """Black text on white, one line per line of ``text``, ``spacing`` x the font size apart."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    face = font(font_px)
    x, y = origin
    for line in text.split("\n"):
        draw.text((x, y), line, font=face, fill=0)
        y += round(font_px * spacing)
    return image


def render_page() -> Image.Image:
    """The clean A4 page: 150 dpi, about 11 pt serif text."""
    return render_text(PAGE_TEXT, size=A4_150_DPI, font_px=23, origin=(100, 140), spacing=1.8)


def render_label() -> Image.Image:
    return render_text(LABEL_TEXT, size=(560, 220), font_px=40, origin=(30, 25), spacing=1.5)


def turned(image: Image.Image, degrees_counter_clockwise: float) -> Image.Image:
    return image.rotate(
        degrees_counter_clockwise, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
    )


def noisy(image: Image.Image, *, sigma: float = 40.0, seed: int = 7) -> Image.Image:
    """Gaussian noise on every pixel, then a slight blur, as from a poor scanner."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    pixels += np.random.default_rng(seed).normal(0.0, sigma, size=pixels.shape)
    mixed = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return mixed.filter(ImageFilter.GaussianBlur(radius=0.8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(150, 150))
    return buffer.getvalue()


def levenshtein(first: str, second: str) -> int:
    previous = list(range(len(second) + 1))
    for i, left in enumerate(first, start=1):
        current = [i]
        for j, right in enumerate(second, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            )
        previous = current
    return previous[-1]


def character_error_rate(recognised: str, truth: str) -> float:
    found, expected = " ".join(recognised.split()), " ".join(truth.split())
    return levenshtein(found, expected) / len(expected)


CASES = {
    "clean": (render_page, PAGE_TEXT, 0.02),
    "label": (render_label, LABEL_TEXT, 0.02),
    "rotated": (lambda: turned(render_page(), 5.0), PAGE_TEXT, 0.02),
    "noisy": (lambda: noisy(render_page()), PAGE_TEXT, 0.15),
}


@pytest.fixture(scope="module")
def recognised() -> Iterator[dict[str, EngineResult]]:
    """Each case's page, recognised once by one engine worker, with default options."""
    with EnginePool(workers=1) as pool:
        yield {case: pool.recognize(png_bytes(make())) for case, (make, _, _) in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_character_error_rate(recognised: dict[str, EngineResult], case: str) -> None:
    _, truth, bar = CASES[case]
    text = recognised[case].text
    rate = character_error_rate(text, truth)
    print(f"\nCER {case}: {rate:.4f} ({rate * 100:.2f}%)")
    assert rate <= bar, f"CER {case} = {rate:.4f} > {bar}; recognised:\n{text}"


@pytest.mark.parametrize("case", ["clean", "label", "rotated"])
def test_lines_come_out_in_reading_order(recognised: dict[str, EngineResult], case: str) -> None:
    _, truth, _ = CASES[case]
    lines = recognised[case].pages[0].lines
    assert len(lines) == len(truth.split("\n"))
    firsts = [line.text.split()[0] for line in lines]
    assert firsts == [line.split()[0] for line in truth.split("\n")]
    centres = [line.box.top + line.box.bottom for line in lines]
    assert centres == sorted(centres)
