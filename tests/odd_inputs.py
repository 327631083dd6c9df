"""Generate the odd files users drop, with real text on them: the kinds other OCR tools keep in
their public test collections (fax TIFFs, 16-bit and CMYK scans, phone photos with an EXIF
orientation, rotated and two-column PDF pages, huge monochrome pages, broken files).

Every page is rendered with a real TrueType font (DejaVu, as ``test_engine_accuracy`` uses), so
the engine has something to read; each function returns the file's bytes and the words on it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import img2pdf
import pikepdf
from engine_pages import common_subsequence, words
from PIL import Image
from test_engine_accuracy import render_text


def order_score(found: str, expected: str) -> float:
    """How much of the expected word order survives: longest common subsequence / words."""
    expected_words = words(expected)
    return common_subsequence(expected_words, words(found)) / max(1, len(expected_words))


def page(
    text: str,
    *,
    size: tuple[int, int] = (1100, 420),
    font_px: int = 34,
    origin: tuple[int, int] = (40, 40),
    mode: str = "L",
) -> Image.Image:
    """Black text on white, one line per line of ``text``."""
    image = render_text(text, size=size, font_px=font_px, origin=origin, spacing=1.6)
    return image if mode == "L" else image.convert(mode)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def g4_tiff(pages: Sequence[Image.Image], *, dpi: int = 200) -> bytes:
    """A CCITT Group 4 TIFF, as fax machines and document scanners write, one page per image."""
    first, *rest = [p.convert("1") for p in pages]
    return encoded(first, "TIFF", compression="group4", dpi=(dpi, dpi), save_all=True,
                   append_images=rest)  # fmt: skip


def sixteen_bit_png(image: Image.Image) -> bytes:
    """16-bit greyscale, as some scanners deliver in their "48-bit colour / 16-bit grey" modes."""
    wide = image.convert("L").point(lambda v: v * 257, mode="I").convert("I;16")
    return encoded(wide, "PNG")


def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """Pixels stored sideways with EXIF Orientation 6 (turn 90 degrees clockwise to view)."""
    stored = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(stored, "JPEG", quality=90, exif=exif.tobytes())


def alpha_png(image: Image.Image) -> bytes:
    """Black text on a transparent background (the paper is an alpha channel)."""
    ink = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ink.putalpha(image.convert("L").point(lambda v: 255 - v))
    return encoded(ink, "PNG")


def pdf_of(images: Sequence[Image.Image], *, rotate: int = 0, dpi: int = 150) -> bytes:
    """A PDF with one image page per image; ``rotate`` sets each page's /Rotate."""
    pngs = [encoded(image, "PNG", dpi=(dpi, dpi)) for image in images]
    data: bytes = img2pdf.convert(pngs)
    if not rotate:
        return data
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for each in pdf.pages:
            each.Rotate = rotate
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def two_columns(left: str, right: str) -> Image.Image:
    """A page with two columns of text side by side, read left column first."""
    image = Image.new("L", (1400, 560), 255)
    image.paste(page(left, size=(660, 560), font_px=30), (20, 0))
    image.paste(page(right, size=(660, 560), font_px=30), (720, 0))
    return image


def truncated(data: bytes, *, keep: float) -> bytes:
    return data[: int(len(data) * keep)]
