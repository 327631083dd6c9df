"""Write a searchable PDF by hand: each page image with an invisible text layer on top.

Layout of the file: catalog, page tree, one shared font, then per page a page object, its
content stream and its JPEG image (DCTDecode). The text is drawn in render mode 3 (invisible)
with a Type0 font whose CIDs are the UTF-16 code units of the text and whose ToUnicode CMap
maps them back, so any Unicode text in the Basic Multilingual Plane can be searched and copied;
characters beyond it are written as U+FFFD. The font has no glyphs (invisible text needs none)
and a fixed advance of half an em; each line is stretched with ``Tz`` to its box. Content
streams are left uncompressed so the text layer can be inspected in tests.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from ocrwatch.emulator.document import Page
from ocrwatch.emulator.recognizer import PageText

_ADVANCE_EM = 0.5  # every glyph is half an em wide (the font's /DW 500)
_JPEG_QUALITY = 75


def _cmap() -> bytes:
    """A ToUnicode CMap mapping every 2-byte code to the same UTF-16 code unit."""
    ranges = [
        f"<{high:02X}00> <{high:02X}FF> <{high:02X}00>"
        for high in range(256)
        if not 0xD8 <= high <= 0xDF  # surrogates are never written (see _encode)
    ]
    blocks = []
    for start in range(0, len(ranges), 100):  # at most 100 entries per block
        chunk = ranges[start : start + 100]
        blocks.append(f"{len(chunk)} beginbfrange\n" + "\n".join(chunk) + "\nendbfrange")
    text = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )
    return text.encode("ascii")


def _encode(text: str) -> str:
    """The text as a PDF hex string of 2-byte codes."""
    units = [
        ord(ch) if ord(ch) <= 0xFFFF and not 0xD800 <= ord(ch) <= 0xDFFF else 0xFFFD for ch in text
    ]
    return "<" + "".join(f"{unit:04X}" for unit in units) + ">"


def _jpeg(image: Image.Image) -> tuple[bytes, str]:
    if image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode in ("1", "I", "I;16", "F", "LA") else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue(), "/DeviceGray" if image.mode == "L" else "/DeviceRGB"


def _text_layer(text: PageText, *, scale: float, page_height_pt: float) -> str:
    commands = ["BT", "3 Tr"]
    for line in text.lines:
        if not line.text.strip():
            continue
        box = line.box
        size_pt = max((box.bottom - box.top) * scale * 0.8, 1.0)
        width_pt = max((box.right - box.left) * scale, 1.0)
        natural_pt = len(line.text) * _ADVANCE_EM * size_pt
        stretch_percent = 100.0 * width_pt / natural_pt
        # PDF's origin is bottom-left; put the baseline a fifth of the box above its bottom.
        baseline_pt = page_height_pt - box.bottom * scale + (box.bottom - box.top) * scale * 0.2
        commands.append(
            f"/F1 {size_pt:.2f} Tf {stretch_percent:.3f} Tz "
            f"1 0 0 1 {box.left * scale:.2f} {baseline_pt:.2f} Tm {_encode(line.text)} Tj"
        )
    commands.append("ET")
    return "\n".join(commands)


class _PdfFile:
    """Objects numbered in order of creation, serialised with an exact xref table."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def reserve(self) -> int:
        self.objects.append(b"")
        return len(self.objects)

    def set(self, number: int, body: bytes) -> None:
        self.objects[number - 1] = body

    def add(self, body: bytes) -> int:
        number = self.reserve()
        self.set(number, body)
        return number

    def add_stream(self, header: str, payload: bytes) -> int:
        return self.add(
            f"<< {header} /Length {len(payload)} >>\nstream\n".encode("ascii")
            + payload
            + b"\nendstream"
        )

    def serialise(self, *, root: int, info: int) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
        xref_offset = len(out)
        out += f"xref\n0 {len(self.objects) + 1}\n0000000000 65535 f \n".encode("ascii")
        for offset in offsets:
            out += f"{offset:010d} 00000 n \n".encode("ascii")
        out += (
            f"trailer\n<< /Size {len(self.objects) + 1} /Root {root} 0 R /Info {info} 0 R >>\n"
            f"startxref\n{xref_offset}\n%%EOF\n"
        ).encode("ascii")
        return bytes(out)


def write_searchable_pdf(pages: Sequence[tuple[Page, PageText]]) -> bytes:
    """One PDF page per (page, text): the page's image, if it has one, under its text."""
    pdf = _PdfFile()
    catalog = pdf.reserve()
    tree = pdf.reserve()
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>".encode("ascii"))
    descriptor = pdf.add(
        b"<< /Type /FontDescriptor /FontName /GlyphLessFont /Flags 5 "
        b"/FontBBox [0 -200 500 800] /ItalicAngle 0 /Ascent 800 /Descent -200 "
        b"/CapHeight 800 /StemV 80 >>"
    )
    cid_font = pdf.add(
        f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /GlyphLessFont "
        f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        f"/FontDescriptor {descriptor} 0 R /DW {int(_ADVANCE_EM * 1000)} "
        f"/CIDToGIDMap /Identity >>".encode("ascii")
    )
    to_unicode = pdf.add_stream("", _cmap())
    font = pdf.add(
        f"<< /Type /Font /Subtype /Type0 /BaseFont /GlyphLessFont /Encoding /Identity-H "
        f"/DescendantFonts [{cid_font} 0 R] /ToUnicode {to_unicode} 0 R >>".encode("ascii")
    )
    kids = []
    for page, text in pages:
        scale = page.points_per_px
        width_pt, height_pt = page.width_px * scale, page.height_px * scale
        drawing = ""
        xobjects = ""
        if page.image is not None:
            jpeg, colour_space = _jpeg(page.image)
            image = pdf.add_stream(
                f"/Type /XObject /Subtype /Image /Width {page.image.width} "
                f"/Height {page.image.height} /ColorSpace {colour_space} "
                f"/BitsPerComponent 8 /Filter /DCTDecode",
                jpeg,
            )
            drawing = f"q {width_pt:.2f} 0 0 {height_pt:.2f} 0 0 cm /Im1 Do Q\n"
            xobjects = f"/XObject << /Im1 {image} 0 R >> "
        layer = _text_layer(text, scale=scale, page_height_pt=height_pt)
        content = pdf.add_stream("", (drawing + layer).encode("ascii"))
        kids.append(
            pdf.add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 {width_pt:.2f} {height_pt:.2f}] "
                f"/Resources << /Font << /F1 {font} 0 R >> {xobjects}>> "
                f"/Contents {content} 0 R >>".encode("ascii")
            )
        )
    kid_refs = " ".join(f"{kid} 0 R" for kid in kids)
    pdf.set(
        tree,
        f"<< /Type /Pages /Count {len(kids)} /Kids [{kid_refs}] >>".encode("ascii"),
    )
    info = pdf.add(b"<< /Producer (ocrwatch emulator) >>")
    return pdf.serialise(root=catalog, info=info)
