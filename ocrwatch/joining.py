"""Join the parts a service returned for one format into one document, and tell formats apart.

Pure: bytes in, bytes out. The API documents one ``results[]`` entry per format, but its
``type`` strings are undocumented for some outputs (JSON arrives as ``Text`` or ``Other``) and
nothing promises one searchable PDF or one hOCR document per file rather than one per page.
So a result is recognised by its content where the content is decisive (``%PDF-`` with binary
bytes or ``%%EOF``, an hOCR page), and parts of one format are joined here:

- PDF: the pages of every part, in order, in one document (pikepdf, loaded on first use so
  the daemon pays for it only when a service actually splits a PDF);
- hOCR: the first part's head, then the ``<body>`` content of every part in order; ids that
  would repeat get a ``_pN`` suffix and a part's single ``ppageno`` becomes its page index;
- JSON: arrays are concatenated; objects (or a mix) become an array of the parts.

Anything that cannot be joined raises ``PermanentError``: a sidecar is never half of a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Sequence

from ocrwatch.errors import PermanentError
from ocrwatch.model import ResultFormat

PDF_MAGIC = b"%PDF-"
PDF_MAGIC_WINDOW = 1024  # readers accept the header anywhere in the first kilobyte
PDF_EOF = b"%%EOF"  # and look for the end marker in the last one
_HOCR_PAGE = re.compile(rb"""class\s*=\s*["'][^"']*\bocr_page\b""")
_MARKUP_START = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<(?:\?xml|!DOCTYPE|html)", re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_ID = re.compile(r"""(\bid\s*=\s*)(["'])([^"']*)\2""")
_PPAGENO = re.compile(r"\bppageno\s+\d+")


def sniff(data: bytes) -> ResultFormat | None:
    """PDF or hOCR when the bytes say so beyond doubt, else None (text or JSON)."""
    if PDF_MAGIC in data[:PDF_MAGIC_WINDOW] and _is_whole_pdf(data):
        return ResultFormat.PDF
    if _MARKUP_START.match(data[:256]) and _HOCR_PAGE.search(data):
        return ResultFormat.HOCR
    return None


def _is_whole_pdf(data: bytes) -> bool:
    """Beyond its magic, a PDF has binary bytes or an end marker; recognised text has neither.

    A scanned page about PDF files can be recognised as text beginning with ``%PDF-``; taking
    it for a PDF would fail the file (its text "missing") or write text as a PDF.
    """
    if PDF_EOF in data[-PDF_MAGIC_WINDOW:]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def is_json_document(data: bytes) -> bool:
    """True for UTF-8 JSON whose top level is an object or an array."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, dict | list)


def join(result_format: ResultFormat, parts: Sequence[bytes]) -> bytes:
    """One document of ``result_format`` from its parts (one part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    if result_format is ResultFormat.PDF:
        return join_pdfs(parts)
    if result_format is ResultFormat.HOCR:
        return join_hocr(parts)
    if result_format is ResultFormat.JSON:
        return join_json(parts)
    if result_format is ResultFormat.TEXT:
        return join_text_pages(parts)
    raise PermanentError(f"the service returned {len(parts)} {result_format} results for one file")


def join_text_pages(parts: Sequence[bytes]) -> bytes:
    """Text parts as one text file, paged the way pdftotext pages it.

    Every page (a part, or a form-feed-separated piece of one) ends its last line with a
    newline, and a form feed follows it when another page comes; a blank page stays empty. So
    page 1's last line and page 2's first are two lines for ``grep`` and ``wc -l``, and the
    file ends with one newline. This is the one rule for a text sidecar's pages, whatever the
    service's own separator.
    """
    pages = [page for part in parts for page in part.split(b"\f")]
    return b"\f".join(page if not page or page.endswith(b"\n") else page + b"\n" for page in pages)


def join_pdfs(parts: Sequence[bytes]) -> bytes:
    """The pages of every PDF part, in order, as one PDF."""
    # Only here: most daemons never see a split PDF, and pikepdf is a large import.
    import pikepdf  # noqa: PLC0415

    try:
        # Every part stays open until the save: qpdf copies a page's streams only then.
        with contextlib.ExitStack() as stack:
            joined = stack.enter_context(pikepdf.Pdf.new())
            for index, data in enumerate(parts, start=1):
                part = stack.enter_context(pikepdf.open(io.BytesIO(data)))
                if len(part.pages) == 0:
                    raise PermanentError(f"PDF part {index} of {len(parts)} has no pages")
                joined.pages.extend(part.pages)
            out = io.BytesIO()
            joined.save(out)
            return out.getvalue()
    except pikepdf.PdfError as exc:
        raise PermanentError(f"cannot join the service's {len(parts)} PDF parts: {exc}") from None


def join_hocr(parts: Sequence[bytes]) -> bytes:
    """One hOCR document holding every part's pages in order."""
    texts = [_decode(data, index, len(parts)) for index, data in enumerate(parts, start=1)]
    first = texts[0]
    opening = _BODY_OPEN.search(first)
    closing = _last(_BODY_CLOSE, first)
    if opening is None or closing is None or closing.start() < opening.end():
        raise PermanentError("cannot join the service's hOCR parts: the first has no <body>")
    seen: set[str] = set()
    bodies: list[str] = []
    for index, text in enumerate(texts):
        body = _body_of(text, index + 1, len(texts))
        if len(_PPAGENO.findall(body)) == 1:
            body = _PPAGENO.sub(f"ppageno {index}", body)
        bodies.append(_unique_ids(body, seen, page=index + 1))
    joined = first[: opening.end()] + "\n".join(bodies) + first[closing.start() :]
    return joined.encode("utf-8")


def join_json(parts: Sequence[bytes]) -> bytes:
    """Arrays concatenated in order; otherwise an array of the parts."""
    values: list[object] = []
    for index, data in enumerate(parts, start=1):
        try:
            values.append(json.loads(data))
        except (ValueError, UnicodeDecodeError):
            raise PermanentError(
                f"JSON part {index} of {len(parts)} from the service does not parse"
            ) from None
    joined: list[object] = []
    if all(isinstance(value, list) for value in values):
        for value in values:
            assert isinstance(value, list)
            joined.extend(value)
    else:
        joined = values
    return json.dumps(joined, ensure_ascii=False).encode("utf-8")


def _decode(data: bytes, index: int, count: int) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PermanentError(f"hOCR part {index} of {count} is not UTF-8") from None


def _body_of(text: str, index: int, count: int) -> str:
    opening = _BODY_OPEN.search(text)
    closing = _last(_BODY_CLOSE, text)
    if opening is None or closing is None or closing.start() < opening.end():
        raise PermanentError(f"cannot join hOCR part {index} of {count}: it has no <body>")
    return text[opening.end() : closing.start()].strip("\n")


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _unique_ids(body: str, seen: set[str], *, page: int) -> str:
    """Every ``id`` unique across the joined document: a repeat gets ``_p<page>``."""
    renamed: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        old = match.group(3)
        if old in seen and old not in renamed:
            new = f"{old}_p{page}"
            while new in seen:
                new += "_"
            renamed[old] = new
        new = renamed.get(old, old)
        seen.add(new)
        return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

    return _ID.sub(rename, body)
