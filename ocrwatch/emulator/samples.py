"""Generate small sample documents that show their text and carry it as ground truth.

Every image draws its lines with Pillow's default font, line i of n centred in the band
``i*h/n .. (i+1)*h/n`` (the layout the fixture recognizer reports), so a real OCR engine can
read them too. The text is also embedded where the fixture recognizer looks for it: a PNG iTXt
chunk ``ocr-text``, a JPEG or GIF comment, the TIFF ImageDescription tag (UTF-8 bytes) and the
PDF Info ``/Subject`` (pages joined with form feeds). BMP has nowhere to carry text: the
fixture recognizer derives a text from its content instead.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import pikepdf
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin, TiffImagePlugin

TEXT_KEY = "ocr-text"  # the PNG text chunk the fixture recognizer reads

_MAX_FONT_SIZE_PX = 40


def draw_page(text: str, *, width: int = 800, height: int = 600) -> Image.Image:
    """A white greyscale page with each line of ``text`` drawn in its own horizontal band."""
    image = Image.new("L", (width, height), 255)
    lines = text.split("\n")
    if not text.strip():
        return image
    draw = ImageDraw.Draw(image)
    band_px = height / len(lines)
    longest = max(len(line) for line in lines) or 1
    # Characters of the default font are about 0.6 em wide; keep the longest line inside the page.
    size_px = int(min(band_px * 0.6, _MAX_FONT_SIZE_PX, (width * 0.9) / (0.6 * longest)))
    font = ImageFont.load_default(size=max(size_px, 6))
    for index, line in enumerate(lines):
        centre_y = (index + 0.5) * band_px
        draw.text((width * 0.04, centre_y), line, fill=0, font=font, anchor="lm")
    return image


def make_png(text: str, *, width: int = 800, height: int = 600) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(TEXT_KEY, text)
    buffer = io.BytesIO()
    draw_page(text, width=width, height=height).save(buffer, "PNG", pnginfo=info, optimize=False)
    return buffer.getvalue()


def make_jpeg(text: str, *, width: int = 800, height: int = 600, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    draw_page(text, width=width, height=height).save(
        buffer, "JPEG", quality=quality, comment=text.encode("utf-8")
    )
    return buffer.getvalue()


def make_gif(text: str, *, width: int = 800, height: int = 600) -> bytes:
    buffer = io.BytesIO()
    draw_page(text, width=width, height=height).save(buffer, "GIF", comment=text.encode("utf-8"))
    return buffer.getvalue()


def make_bmp(text: str, *, width: int = 800, height: int = 600) -> bytes:
    """A BMP showing ``text``; BMP carries no metadata, so no ground truth is embedded."""
    buffer = io.BytesIO()
    draw_page(text, width=width, height=height).save(buffer, "BMP")
    return buffer.getvalue()


def make_tiff(text: str | Sequence[str], *, width: int = 800, height: int = 600) -> bytes:
    """A TIFF with one page per text (a multi-page TIFF when given several)."""
    pages = [text] if isinstance(text, str) else list(text)
    if not pages:
        raise ValueError("make_tiff needs at least one page")
    buffer = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buffer, new=True) as writer:
        for page_text in pages:
            tags = TiffImagePlugin.ImageFileDirectory_v2()
            # Pillow writes str tags as ASCII and would turn non-ASCII into "?"; bytes pass through.
            tags[270] = page_text.encode("utf-8")
            draw_page(page_text, width=width, height=height).save(
                writer, "TIFF", tiffinfo=tags, compression="tiff_deflate"
            )
            writer.newFrame()
    return buffer.getvalue()


def make_pdf(pages: Sequence[str], *, width: int = 800, height: int = 600) -> bytes:
    """A PDF with one JPEG page image per text; ``/Subject`` holds the texts joined by form feeds.

    The pages are written at 72 dpi, so one PDF point is one pixel of the page image.
    """
    if not pages:
        raise ValueError("make_pdf needs at least one page")
    images = [draw_page(page, width=width, height=height) for page in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    # pikepdf writes the Subject: Pillow writes UTF-16 bytes unescaped in a literal string,
    # where a reader rightly turns a carriage-return byte (as in U+010D) into a line feed.
    with pikepdf.open(io.BytesIO(buffer.getvalue())) as pdf:
        pdf.docinfo["/Subject"] = "\f".join(pages)
        pdf.docinfo["/Producer"] = "ocrwatch samples"
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True)
    return out.getvalue()


def make_bomb_png(*, width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )
