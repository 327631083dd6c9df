"""Write a searchable PDF: each page as it came, with an invisible text layer on top (pikepdf).

A PDF input keeps its pages: their content streams, images, annotations and boxes are not
touched. The page's content is wrapped in ``q``/``Q`` (so a transformation it leaves behind
cannot move the text; as many more as its own ``q``/``Q`` fail to pair) and followed by the
text layer; only the page's ``/Resources`` gain a
font, under a name the page does not use yet. If the task turned the pages (``Rotate``), the
page's ``/Rotate`` says so, and the text is placed on the page as it is then shown.

An image input becomes one page per image, its size from the image's resolution, with the
image embedded without loss (``pdfimages``: a JPEG as the bytes that came, others as Flate).

The text is drawn in render mode 3 (invisible) with a Type0 font whose character codes are
the UTF-16 code units of the text; its ToUnicode CMap maps them back, so any text in the Basic
Multilingual Plane can be searched and copied (characters beyond it are written as U+FFFD).
The font program is embedded (``glyphless``): every code shows its one blank glyph, half an em
wide, and each line is stretched with ``Tz`` to the width of its box, with the box's height as
the font size, so a selection covers the word where the recogniser saw it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pikepdf

from ocrwatch.emulator.document import Document, DocumentError, Page
from ocrwatch.emulator.glyphless import ADVANCE, ASCENT, DESCENT, FAMILY, glyphless_font
from ocrwatch.emulator.pdfimages import flate_stream, image_stream
from ocrwatch.emulator.pdfpages import inherited
from ocrwatch.emulator.recognizer import PageText

_ADVANCE_EM = ADVANCE / 1000
_DESCENT_EM = -DESCENT / 1000
Box4 = tuple[float, float, float, float]
_TYPE0_FONT_VERSION = "1.2"
_IMAGE_PAGES_VERSION = "1.5"  # images may have 16 bits per component


def _units(text: str) -> list[int]:
    """The text's 2-byte codes: UTF-16 code units, U+FFFD for what lies beyond the BMP."""
    return [
        ord(ch) if ord(ch) <= 0xFFFF and not 0xD800 <= ord(ch) <= 0xDFFF else 0xFFFD for ch in text
    ]


def _encode(text: str) -> str:
    """The text as a PDF hex string of 2-byte codes."""
    return "<" + "".join(f"{unit:04X}" for unit in _units(text)) + ">"


def _cmap(pages: Sequence[tuple[Page, PageText]]) -> bytes:
    """A ToUnicode CMap mapping each 2-byte code to the same UTF-16 code unit.

    A range may only vary in its last byte, so there is one range per high byte; only the
    high bytes the text uses are listed (Latin text needs one or two of the 256).
    """
    highs = sorted(
        {unit >> 8 for _, text in pages for line in text.lines for unit in _units(line.text)}
    )
    ranges = [f"<{high:02X}00> <{high:02X}FF> <{high:02X}00>" for high in highs or [0]]
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


def _font(pdf: pikepdf.Pdf, pages: Sequence[tuple[Page, PageText]]) -> pikepdf.Object:
    """The Type0 font of the text layer, with its program embedded; one per output file."""
    program = glyphless_font()
    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=pikepdf.Name(f"/{FAMILY}"),
        Flags=5,  # fixed pitch, symbolic
        FontBBox=[0, DESCENT, ADVANCE, ASCENT],
        ItalicAngle=0,
        Ascent=ASCENT,
        Descent=DESCENT,
        CapHeight=ASCENT,
        StemV=80,
        FontFile2=flate_stream(pdf, program, Length1=len(program)),
    )
    cid_font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name(f"/{FAMILY}"),
        CIDSystemInfo=pikepdf.Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor),
        DW=ADVANCE,
        # Every code (a UTF-16 unit) shows glyph 1, the blank one.
        CIDToGIDMap=flate_stream(pdf, b"\x00\x01" * 0x10000),
    )
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type0,
            BaseFont=pikepdf.Name(f"/{FAMILY}"),
            Encoding=pikepdf.Name("/Identity-H"),
            DescendantFonts=[pdf.make_indirect(cid_font)],
            ToUnicode=flate_stream(pdf, _cmap(pages)),
        )
    )


def _placement(u: float, v: float, *, box: Box4, rotation: int) -> tuple[float, ...]:
    """The text matrix for a baseline starting at (u, v) pt of the shown page (v downwards).

    A page shown turned clockwise by ``rotation`` has its user space turned the other way:
    the matrix maps the shown page's right and up onto user space, from the visible box.
    """
    x0, y0, x1, y1 = box
    if rotation == 90:
        return (0, 1, -1, 0, x0 + v, y0 + u)
    if rotation == 180:
        return (-1, 0, 0, -1, x1 - u, y0 + v)
    if rotation == 270:
        return (0, -1, 1, 0, x1 - v, y1 - u)
    return (1, 0, 0, 1, x0 + u, y1 - v)


def _image_matrix(turn: int, width_pt: float, height_pt: float) -> tuple[float, ...]:
    """The ``cm`` that fills the page with an image turned clockwise by ``turn`` degrees
    (an image fills the unit square, its first row at the top)."""
    if turn == 90:
        return (0, -height_pt, width_pt, 0, 0, height_pt)
    if turn == 180:
        return (-width_pt, 0, 0, -height_pt, width_pt, height_pt)
    if turn == 270:
        return (0, height_pt, -width_pt, 0, width_pt, 0)
    return (width_pt, 0, 0, height_pt, 0, 0)


def _text_layer(text: PageText, page: Page, *, box: Box4, rotation: int, font: str) -> bytes:
    x0, y0, x1, y1 = box
    shown_width, shown_height = (y1 - y0, x1 - x0) if rotation % 180 else (x1 - x0, y1 - y0)
    scale_x, scale_y = shown_width / page.width_px, shown_height / page.height_px
    commands = ["BT", "3 Tr"]
    for line in text.lines:
        if not line.text.strip():
            continue
        box_px = line.box
        size_pt = max((box_px.bottom - box_px.top) * scale_y, 1.0)
        width_pt = max((box_px.right - box_px.left) * scale_x, 1.0)
        stretch_percent = 100.0 * width_pt / (len(line.text) * _ADVANCE_EM * size_pt)
        # The font's descent is a fifth of the em: the baseline sits that far above the bottom.
        baseline = box_px.bottom * scale_y - _DESCENT_EM * size_pt
        matrix = _placement(box_px.left * scale_x, baseline, box=box, rotation=rotation)
        commands.append(
            f"{font} {size_pt:.2f} Tf {stretch_percent:.3f} Tz "
            + " ".join(f"{value:.3f}" for value in matrix)
            + f" Tm {_encode(line.text)} Tj"
        )
    commands.append("ET")
    return ("\n".join(commands) + "\n").encode("ascii")


def _add_font_resource(page: pikepdf.Page, font: pikepdf.Object) -> str:
    """Give the page its own /Resources (keeping inherited ones) with the font under a new name."""
    resources = inherited(page.obj, "/Resources")
    own = pikepdf.Dictionary(
        dict(resources.items()) if isinstance(resources, pikepdf.Dictionary) else {}
    )
    fonts = own.get("/Font")
    own_fonts = pikepdf.Dictionary(
        dict(fonts.items()) if isinstance(fonts, pikepdf.Dictionary) else {}
    )
    number = 0
    while f"/OcrText{number}" in own_fonts:
        number += 1
    name = f"/OcrText{number}"
    own_fonts[name] = font
    own.Font = own_fonts
    page.obj.Resources = own
    return name


def _unbalanced(page: pikepdf.Page) -> tuple[int, int]:
    """How many ``Q`` the page's content has with no ``q`` open, and how many ``q`` it leaves
    open: a text layer after ``Q`` must still be drawn in the page's default user space."""
    try:
        operators = [str(step.operator) for step in pikepdf.parse_content_stream(page, "q Q")]
    except pikepdf.PdfError:
        return 0, 0  # content qpdf cannot parse: readers show what they can, and so do we
    stray = depth = 0
    for operator in operators:
        if operator == "q":
            depth += 1
        elif depth:
            depth -= 1
        else:
            stray += 1
    return stray, depth


def _onto_pdf_pages(document: Document, pages: Sequence[tuple[Page, PageText]]) -> pikepdf.Pdf:
    pdf = pikepdf.open(io.BytesIO(document.data))
    font = _font(pdf, pages)
    for page, text in pages:
        ref = page.pdf
        if ref is None:
            raise ValueError("a PDF document's page without its PDF page")
        target = pdf.pages[ref.index]
        if ref.rotation != ref.own_rotation:
            target.obj.Rotate = ref.rotation
        name = _add_font_resource(target, font)
        stray, unclosed = _unbalanced(target)
        target.contents_add(b"q\n" * (stray + 1), prepend=True)
        layer = _text_layer(text, page, box=ref.box, rotation=ref.rotation, font=name)
        target.contents_add(b"\n" + b"Q\n" * (unclosed + 1) + layer)
    # A result of some of the pages (a service answering one PDF per page) holds only those.
    wanted = {page.pdf.index for page, _ in pages if page.pdf is not None}
    for index in reversed(range(len(pdf.pages))):
        if index not in wanted:
            del pdf.pages[index]
    return pdf


def _onto_new_pages(document: Document, pages: Sequence[tuple[Page, PageText]]) -> pikepdf.Pdf:
    pdf = pikepdf.new()
    font = _font(pdf, pages)
    for page, text in pages:
        width_pt = page.width_px * page.points_per_px
        height_pt = page.height_px * page.points_per_px
        box = (0.0, 0.0, width_pt, height_pt)
        resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(OcrText0=font))
        drawing = b""
        if page.image is not None:
            image, turn = image_stream(pdf, document, page)
            resources.XObject = pikepdf.Dictionary(Scan=image)
            matrix = " ".join(f"{v:.3f}" for v in _image_matrix(turn, width_pt, height_pt))
            drawing = f"q {matrix} cm /Scan Do Q\n".encode()
        layer = _text_layer(text, page, box=box, rotation=0, font="/OcrText0")
        pdf.pages.append(
            pikepdf.Page(
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Page,
                    MediaBox=[0, 0, round(width_pt, 3), round(height_pt, 3)],
                    Resources=resources,
                    Contents=pikepdf.Stream(pdf, drawing + layer),
                )
            )
        )
    pdf.docinfo["/Producer"] = "ocrwatch emulator"
    return pdf


def write_searchable_pdf(document: Document, pages: Sequence[tuple[Page, PageText]]) -> bytes:
    """One PDF page per (page, text): the PDF's own pages, or each image, under its text."""
    is_pdf = document.format == "PDF" and all(page.pdf is not None for page, _ in pages)
    # What the file uses came with: Type0 fonts PDF 1.2, 16-bit images PDF 1.5.
    min_version = _TYPE0_FONT_VERSION if is_pdf else _IMAGE_PAGES_VERSION
    try:
        pdf = _onto_pdf_pages(document, pages) if is_pdf else _onto_new_pages(document, pages)
        with pdf:
            out = io.BytesIO()
            pdf.save(out, deterministic_id=True, min_version=min_version)
            return out.getvalue()
    except pikepdf.PdfError as exc:
        raise DocumentError(f"The searchable PDF cannot be written: {exc}") from exc
