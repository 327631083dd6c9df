"""The one table of file formats and limits: how each is recognised, where it goes, how it is sent.

Pure: it looks at bytes it is given and answers with values. Every layer reads this table
instead of keeping its own list: the daemon's sniffing (``probe``), its refusals
(``preflight``), the lossless conversion before upload (``conversion``), the default include
patterns (``config``), ``ocrwatch check``, the emulator's document loader and the engine's page
reader. ``tests/test_formats.py`` runs sample files through each of them and fails when one
disagrees with this table.

Two targets read files: Aspose OCR Cloud (``Target.CLOUD``), which takes single-page BMP, JPEG,
PNG, TIFF and GIF images and PDFs (RecognizePdf) and nothing else, and the local engine behind
the embedded service (``Target.ENGINE``), which reads every format here that Pillow or pdfium
decodes, every page of a TIFF included. For the cloud, what it does not take is converted
losslessly on the way out (the file in the inbox is never changed): a multi-page TIFF becomes
one PDF with its pages' compressed data kept (one POST to RecognizePdf instead of one per page,
see docs/formats.md), and WebP, AVIF, JPEG 2000 and PNM become PNG. HEIC, which Pillow cannot
decode, is refused with its name.

Limits, one per target, applied by every layer on the way to it, so a page over the limit is
refused before upload, with its size. The local engine holds each page decoded in its own
mode while it reads it (a large page tile by tile, never whole as colour), so its limit is on
the decoded bytes, ``MAX_PAGE_BYTES``: pixels times what Pillow keeps a pixel in (one byte for
a 1-bit, grey or palette page, four for colour), and never past ``MAX_DECODED_PIXELS``. A 70 MP
1-bit scan of an A3 sheet at 600 dpi is read; a colour page stops at 60 MP, as before. The
cloud documents no limit, and ``MAX_CLOUD_PAGE_PIXELS`` is Pillow's decompression-bomb bound,
past which the daemon would not decode a page to convert it either.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

MAX_PAGE_BYTES = 240_000_000  # the engine's bound on one page decoded in its own mode
COLOUR_BYTES_PER_PIXEL = 4  # Pillow keeps RGB, RGBA, CMYK and 32-bit pages in four bytes
MAX_PAGE_PIXELS = MAX_PAGE_BYTES // COLOUR_BYTES_PER_PIXEL  # a colour page's: 60 MP
MAX_CLOUD_PAGE_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS (its bomb warning)
# Any page's, in any mode: under Pillow's hard bomb bound (twice the above), which the daemon's
# probe applies to every file; 150 MP is a 20 x 20 inch sheet at 600 dpi.
MAX_DECODED_PIXELS = 150_000_000
SNIFF_BYTES = 1024  # the PDF spec lets "%PDF-" start anywhere in the first KiB


class Format(enum.StrEnum):
    PNG = "PNG"
    JPEG = "JPEG"
    TIFF = "TIFF"
    BIGTIFF = "BigTIFF"
    BMP = "BMP"
    GIF = "GIF"
    PDF = "PDF"
    WEBP = "WebP"
    AVIF = "AVIF"
    JPEG2000 = "JPEG 2000"
    PNM = "PNM"
    HEIC = "HEIC"
    UNKNOWN = "unknown"  # none of the above


class Target(enum.StrEnum):
    CLOUD = "cloud"  # Aspose OCR Cloud (and the emulator standing in for it)
    ENGINE = "engine"  # the local engine behind the embedded service


class Delivery(enum.StrEnum):
    """How a file reaches its target."""

    AS_IS = "as is"
    TO_PNG = "converted to PNG (lossless)"
    TO_PDF = "converted to one PDF (lossless), sent to RecognizePdf"
    REFUSED = "refused"


def _prefix(*magics: bytes) -> Callable[[bytes], bool]:
    return lambda head: head.startswith(magics)


def _is_pdf(head: bytes) -> bool:
    return b"%PDF-" in head[:SNIFF_BYTES]


def _is_bmp(head: bytes) -> bool:
    return head.startswith(b"BM") and len(head) >= 26  # a header shorter than 26 is no BMP


def _is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _is_pnm(head: bytes) -> bool:
    return len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace()


def _brand(head: bytes) -> bytes:
    """The major brand of an ISO base media file (``ftyp`` box first), else b""."""
    return head[8:12] if head[4:8] == b"ftyp" else b""


def _is_avif(head: bytes) -> bool:
    return _brand(head) in (b"avif", b"avis")


def _is_heic(head: bytes) -> bool:
    return _brand(head) in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1")


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """One format: its magic, file names, and what each target does with it."""

    format: Format
    matches: Callable[[bytes], bool]  # given at least the first SNIFF_BYTES of the file
    patterns: tuple[str, ...]  # default include patterns
    pillow: str | None  # Pillow's name for the decoder; None: not an image Pillow reads
    cloud: Delivery  # a single-page file sent to the cloud
    cloud_pages: Delivery  # a file of two or more pages sent to the cloud
    engine_reads: bool  # the local engine reads it as it is
    all_pages: bool  # every page is read (False: the first frame only, e.g. GIF animation)
    note: str = ""  # true whichever the target
    cloud_note: str = ""  # true of the cloud only (`ocrwatch check` shows it for the cloud)


_IMAGE_CLOUD = (Delivery.AS_IS, Delivery.AS_IS)
_CONVERTED = (Delivery.TO_PNG, Delivery.TO_PNG)  # an animation: its first frame, as for GIF

FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec(Format.PDF, _is_pdf, ("*.pdf",), None, Delivery.AS_IS, Delivery.AS_IS, True, True,
               "RecognizePdf; image inboxes only"),
    FormatSpec(Format.PNG, _prefix(b"\x89PNG\r\n\x1a\n"), ("*.png",), "PNG", *_IMAGE_CLOUD,
               True, False),
    FormatSpec(Format.JPEG, _prefix(b"\xff\xd8\xff"), ("*.jpg", "*.jpeg", "*.jpe"), "JPEG",
               *_IMAGE_CLOUD, True, False),
    FormatSpec(Format.TIFF, _prefix(b"II*\x00", b"MM\x00*"), ("*.tif", "*.tiff"), "TIFF",
               Delivery.AS_IS, Delivery.TO_PDF, True, True,
               cloud_note="the cloud takes single-page TIFF only"),
    FormatSpec(Format.BIGTIFF, _prefix(b"II+\x00", b"MM\x00+"), ("*.tif", "*.tiff"), "TIFF",
               Delivery.TO_PNG, Delivery.TO_PDF, True, True, "TIFF with 64-bit offsets"),
    FormatSpec(Format.BMP, _is_bmp, ("*.bmp",), "BMP", *_IMAGE_CLOUD, True, False),
    FormatSpec(Format.GIF, _prefix(b"GIF87a", b"GIF89a"), ("*.gif",), "GIF", *_IMAGE_CLOUD,
               True, False, "an animation's first frame"),
    FormatSpec(Format.WEBP, _is_webp, ("*.webp",), "WEBP", *_CONVERTED, True, False,
               "an animation's first frame"),
    FormatSpec(Format.AVIF, _is_avif, ("*.avif",), "AVIF", *_CONVERTED, True, False),
    FormatSpec(Format.JPEG2000, _prefix(b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"),
               ("*.jp2", "*.j2k", "*.jpf", "*.jpx"), "JPEG2000", *_CONVERTED, True, False),
    FormatSpec(Format.PNM, _is_pnm, ("*.pnm", "*.pbm", "*.pgm", "*.ppm"), "PPM", *_CONVERTED,
               True, False, "what scanimage writes"),
    FormatSpec(Format.HEIC, _is_heic, ("*.heic", "*.heif"), None, Delivery.REFUSED,
               Delivery.REFUSED, False, False,
               "no decoder here: convert it to JPEG first (heif-convert IMG.heic IMG.jpg, from"
               " libheif; or set the iPhone's Camera > Formats to Most Compatible)"),
)  # fmt: skip

_BY_FORMAT = {spec.format: spec for spec in FORMATS}
# PDF last: "%PDF-" may sit anywhere in the first KiB, so an image's own magic wins.
_SNIFF_ORDER = sorted(FORMATS, key=lambda spec: spec.format is Format.PDF)
# Every format with a name is picked up, refused ones too: a photo dropped in an inbox is
# refused with a message that names its format rather than ignored without a word.
DEFAULT_INCLUDE: tuple[str, ...] = tuple(
    dict.fromkeys(pattern for spec in FORMATS for pattern in spec.patterns)
)


def sniff(head: bytes) -> Format:
    """The format the first bytes announce (give at least ``SNIFF_BYTES``); never the name."""
    for entry in _SNIFF_ORDER:
        if entry.matches(head):
            return entry.format
    return Format.UNKNOWN


def spec(fmt: Format) -> FormatSpec | None:
    return _BY_FORMAT.get(fmt)


def delivery(fmt: Format, *, pages: int, target: Target) -> Delivery:
    """How a file of ``fmt`` with ``pages`` pages reaches ``target``."""
    entry = _BY_FORMAT.get(fmt)
    if entry is None:
        return Delivery.REFUSED
    if target is Target.ENGINE:
        return Delivery.AS_IS if entry.engine_reads else Delivery.REFUSED
    return entry.cloud_pages if pages > 1 else entry.cloud


def refusal(fmt: Format, *, pages: int, target: Target) -> str | None:
    """Why ``target`` cannot be given this file in any form (None when it can)."""
    if delivery(fmt, pages=pages, target=target) is not Delivery.REFUSED:
        return None
    entry = _BY_FORMAT.get(fmt)
    if entry is None:
        return "not a supported image or PDF (by its content)"
    return f"{fmt} is not supported: {entry.note}" if entry.note else f"{fmt} is not supported"


def bytes_per_pixel(mode: str) -> int:
    """What Pillow keeps one pixel of a page decoded in ``mode`` in."""
    if mode in ("1", "L", "P"):
        return 1  # a 1-bit page too: one byte a pixel once decoded
    if mode.startswith("I;16"):
        return 2
    return COLOUR_BYTES_PER_PIXEL


def pixel_limit(colour_pixels: int, mode: str) -> int:
    """The engine's limit for a page in ``mode``, given its limit for a colour page.

    The limit is on decoded bytes: a page of one byte a pixel may have four times the pixels.
    """
    scaled = colour_pixels * COLOUR_BYTES_PER_PIXEL // bytes_per_pixel(mode)
    return min(scaled, max(colour_pixels, MAX_DECODED_PIXELS))


def max_page_pixels(target: Target, mode: str = "RGB") -> int:
    """How many pixels a page in ``mode`` may have on its way to ``target``."""
    if target is Target.ENGINE:
        return pixel_limit(MAX_PAGE_PIXELS, mode)
    return MAX_CLOUD_PAGE_PIXELS


def page_pixels_problem(
    width_px: int, height_px: int, *, target: Target, page: int = 1, mode: str = "RGB"
) -> str | None:
    """Why a page of this size is refused on its way to ``target`` (None when it is not)."""
    limit = max_page_pixels(target, mode)
    if width_px * height_px <= limit:
        return None
    where = f"page {page} " if page > 1 else ""
    what = f" for a {_MODE_NAMES.get(mode, mode)} page" if target is Target.ENGINE else " a page"
    return (
        f"too large: {where}{width_px}x{height_px} pixels is more than the {target}'s limit "
        f"of {limit:,} pixels{what}"
    )


_MODE_NAMES = {"1": "1-bit", "L": "grey", "P": "palette", "RGB": "colour"}


def pillow_formats(*, target: Target) -> list[str]:
    """Pillow decoder names of the image formats ``target`` is given as they are."""
    names = [
        spec.pillow
        for spec in FORMATS
        if spec.pillow and delivery(spec.format, pages=1, target=target) is Delivery.AS_IS
    ]
    return list(dict.fromkeys(names))


def table(target: Target) -> list[dict[str, str]]:
    """What each format gets on ``target``, for ``ocrwatch check`` and the docs."""
    rows = []
    for entry in FORMATS:
        single = delivery(entry.format, pages=1, target=target)
        several = delivery(entry.format, pages=2, target=target)
        row = {
            "format": str(entry.format),
            "patterns": " ".join(entry.patterns) or "(not included by default)",
            "sent": str(single),
        }
        if entry.all_pages and several is not single:
            row["several_pages"] = str(several)
        note = "; ".join(
            n for n in (entry.note, entry.cloud_note if target is Target.CLOUD else "") if n
        )
        if note:
            row["note"] = note
        rows.append(row)
    return rows
