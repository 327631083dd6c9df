"""Render a recognition in each output format: Text, hOCR, JSON, searchable PDF, PNG.

- Text: UTF-8; lines joined by "\\n", pages by "\\f"; no trailing newline.
- Hocr: XHTML 1.0 with one ``ocr_page`` per page (``title="bbox 0 0 W H; ppageno N"``), one
  ``ocr_line`` per line and one ``ocrx_word`` per word, each with ``title="bbox x0 y0 x1 y1"``
  in page pixels. Word boxes split their line's box in proportion to character offsets.
- JSON: the real field names are undocumented; the emulator writes a UTF-8 JSON array of
  content blocks, one per text line, in reading order::

      [{"page": 1, "topLeftX": 0, "topLeftY": 0, "bottomRightX": 800, "bottomRightY": 200,
        "text": "first line"}, ...]

  ``page`` counts from 1; the coordinates are page pixels (the names follow the API's OCRRect).
- Pdf: see ``pdfwriter`` (a PDF's own pages, or the images, under an invisible text layer).
- ImagePNG: the first page's (rotated) image as PNG; a PDF page is rendered as it is shown.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from ocrwatch.emulator.document import Document, Page
from ocrwatch.emulator.recognizer import Box, Line, PageText
from ocrwatch.model import ResultFormat

_WORD = re.compile(r"\S+")


def render_text(texts: Sequence[PageText]) -> bytes:
    return "\f".join(page.text for page in texts).encode("utf-8")


def _word_boxes(line: Line) -> list[tuple[str, Box]]:
    box, length = line.box, len(line.text)
    span = box.right - box.left
    return [
        (
            match.group(),
            Box(
                left=box.left + span * match.start() // length,
                top=box.top,
                right=box.left + span * match.end() // length,
                bottom=box.bottom,
            ),
        )
        for match in _WORD.finditer(line.text)
    ]


def _bbox(box: Box) -> str:
    return f"bbox {box.left} {box.top} {box.right} {box.bottom}"


def render_hocr(texts: Sequence[PageText], *, ocr_system: str = "ocrwatch emulator") -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"',
        '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
        "<head>",
        "<title></title>",
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>',
        f'<meta name="ocr-system" content={quoteattr(ocr_system)}/>',
        '<meta name="ocr-capabilities" content="ocr_page ocr_line ocrx_word"/>',
        "</head>",
        "<body>",
    ]
    for page_number, page in enumerate(texts, start=1):
        page_box = Box(0, 0, page.width_px, page.height_px)
        title = f"{_bbox(page_box)}; ppageno {page_number - 1}"
        out.append(f'<div class="ocr_page" id="page_{page_number}" title={quoteattr(title)}>')
        for line_number, line in enumerate(page.lines, start=1):
            words = _word_boxes(line)
            if not words:
                continue
            line_id = f"line_{page_number}_{line_number}"
            out.append(f' <span class="ocr_line" id="{line_id}" title="{_bbox(line.box)}">')
            for word_number, (word, box) in enumerate(words, start=1):
                out.append(
                    f'  <span class="ocrx_word" id="word_{page_number}_{line_number}_{word_number}"'
                    f' title="{_bbox(box)}; x_wconf 95">{escape(word)}</span>'
                )
            out.append(" </span>")
        out.append("</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out).encode("utf-8")


def render_json(texts: Sequence[PageText]) -> bytes:
    blocks = [
        {
            "page": page_number,
            "topLeftX": line.box.left,
            "topLeftY": line.box.top,
            "bottomRightX": line.box.right,
            "bottomRightY": line.box.bottom,
            "text": line.text,
        }
        for page_number, page in enumerate(texts, start=1)
        for line in page.lines
    ]
    return json.dumps(blocks, ensure_ascii=False).encode("utf-8")


def render_png(pages: Sequence[Page]) -> bytes:
    page = pages[0]
    image = page.pixels() or Image.new("L", (page.width_px, page.height_px), 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def render(
    result_format: ResultFormat,
    texts: Sequence[PageText],
    *,
    pages: Sequence[Page],
    document: Document,
    ocr_system: str = "ocrwatch emulator",
) -> bytes:
    """The bytes of one ``results[]`` entry; ``pages`` (of ``document``, or cut from its
    pages) and ``texts`` correspond one to one."""
    if result_format is ResultFormat.TEXT:
        return render_text(texts)
    if result_format is ResultFormat.HOCR:
        return render_hocr(texts, ocr_system=ocr_system)
    if result_format is ResultFormat.JSON:
        return render_json(texts)
    if result_format is ResultFormat.PDF:
        # Loaded on first use, as the PDF reader is (see document._load_pdf).
        from ocrwatch.emulator.pdfwriter import write_searchable_pdf  # noqa: PLC0415

        return write_searchable_pdf(document, list(zip(pages, texts, strict=True)))
    return render_png(pages)
