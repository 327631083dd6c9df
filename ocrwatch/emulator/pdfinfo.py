"""Read what the emulator needs from a PDF: page sizes, each page's JPEG image, the Subject.

A small tolerant reader, not a renderer. It finds objects by scanning for ``N G obj`` (the
last definition wins, which also honours incremental updates), unpacks Flate object streams,
walks the page tree from the trailer's ``/Root`` (a classic trailer or an XRef stream), and
takes each page's largest DCTDecode image XObject as its picture. Pages drawn any other way
have no picture. Encrypted PDFs are refused. Literal strings are read byte for byte, without
the end-of-line normalisation of the spec, so UTF-16 text written unescaped (as Pillow does)
survives.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_OBJECT_HEADER = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_WHITESPACE = b" \t\r\n\f\x00"
_DELIMITERS = b"()<>[]{}/%"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}
_MAX_TREE_DEPTH = 64
_LETTER_POINTS = (612.0, 792.0)  # the page size a PDF without any MediaBox is assumed to have


class PdfError(Exception):
    """The bytes are not a PDF this reader can use; the message is shown to the client."""


class Name(str):
    """A PDF name (``/Type``), kept apart from strings, which are ``bytes``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Ref:
    number: int
    generation: int = 0


@dataclass(frozen=True, slots=True)
class PdfPage:
    width_pt: float
    height_pt: float
    jpeg: bytes | None  # the page's picture, when it is a JPEG image XObject


@dataclass(frozen=True, slots=True)
class PdfInfo:
    pages: tuple[PdfPage, ...]
    subject: str | None


class _Parser:
    """Recursive-descent reader of one PDF object starting at ``position``."""

    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data = data
        self.position = position

    def skip_space(self) -> None:
        data, size = self.data, len(self.data)
        while self.position < size:
            byte = data[self.position]
            if byte in _WHITESPACE:
                self.position += 1
            elif byte == ord("%"):
                end = data.find(b"\n", self.position)
                self.position = size if end < 0 else end + 1
            else:
                return

    def read_token(self) -> bytes:
        self.skip_space()
        start = self.position
        while self.position < len(self.data):
            byte = self.data[self.position]
            if byte in _WHITESPACE or byte in _DELIMITERS:
                break
            self.position += 1
        return self.data[start : self.position]

    def read(self) -> object:
        self.skip_space()
        if self.position >= len(self.data):
            raise PdfError("the PDF ends in the middle of an object")
        data, start = self.data, self.position
        if data.startswith(b"<<", start):
            return self._read_dict()
        if data[start] == ord("["):
            self.position += 1
            items: list[object] = []
            while True:
                self.skip_space()
                if self.position < len(data) and data[self.position] == ord("]"):
                    self.position += 1
                    return items
                items.append(self.read())
        if data[start] == ord("("):
            return self._read_literal()
        if data[start] == ord("<"):
            end = data.find(b">", start)
            if end < 0:
                raise PdfError("unterminated hex string")
            self.position = end + 1
            digits = bytes(b for b in data[start + 1 : end] if b not in _WHITESPACE)
            return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
        if data[start] == ord("/"):
            self.position += 1
            return Name(self.read_token().decode("latin-1"))
        token = self.read_token()
        if not token:
            raise PdfError(f"unexpected byte at offset {start}")
        return self._read_number_or_keyword(token)

    def _read_number_or_keyword(self, token: bytes) -> object:
        keywords: dict[bytes, object] = {b"true": True, b"false": False, b"null": None}
        if token in keywords:
            return keywords[token]
        try:
            number = float(token) if b"." in token else int(token)
        except ValueError:
            return Name(token.decode("latin-1"))  # an operator or keyword; harmless here
        if isinstance(number, int):
            # "12 0 R" is a reference: look ahead without consuming anything else.
            saved = self.position
            generation = self.read_token()
            if generation.isdigit() and self.read_token() == b"R":
                return Ref(number, int(generation))
            self.position = saved
        return number

    def _read_dict(self) -> dict[str, object]:
        self.position += 2
        result: dict[str, object] = {}
        while True:
            self.skip_space()
            if self.data.startswith(b">>", self.position):
                self.position += 2
                return result
            key = self.read()
            if not isinstance(key, Name):
                raise PdfError("a dictionary key is not a name")
            result[str(key)] = self.read()

    def _read_literal(self) -> bytes:
        data, out, depth = self.data, bytearray(), 1
        self.position += 1
        while self.position < len(data):
            byte = data[self.position]
            self.position += 1
            if byte == ord("\\"):
                self.position = self._read_escape(out)
                continue
            if byte == ord("("):
                depth += 1
            elif byte == ord(")"):
                depth -= 1
                if depth == 0:
                    return bytes(out)
            out.append(byte)
        raise PdfError("unterminated literal string")

    def _read_escape(self, out: bytearray) -> int:
        data, position = self.data, self.position
        if position >= len(data):
            return position
        byte = data[position]
        if byte in _ESCAPES:
            out += _ESCAPES[byte]
            return position + 1
        if ord("0") <= byte <= ord("7"):
            end = position
            while end < min(position + 3, len(data)) and ord("0") <= data[end] <= ord("7"):
                end += 1
            out.append(int(data[position:end], 8) & 0xFF)
            return end
        if byte in b"\r\n":  # a backslash before an end of line continues the string
            return position + (2 if data.startswith(b"\r\n", position) else 1)
        out.append(byte)
        return position + 1


class _Objects:
    """Every object of the file by number, including those packed in object streams."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offsets: dict[int, int] = {}
        for match in _OBJECT_HEADER.finditer(data):
            self.offsets[int(match.group(1))] = match.end()
        self.packed: dict[int, tuple[bytes, int]] = {}
        for number in list(self.offsets):
            self._unpack_object_stream(number)

    def get(self, number: int) -> object:
        """Object ``number``, or None when it is missing or unreadable (a damaged file)."""
        try:
            if number in self.offsets:
                return _Parser(self.data, self.offsets[number]).read()
            if number in self.packed:
                text, position = self.packed[number]
                return _Parser(text, position).read()
        except (PdfError, ValueError, RecursionError):
            return None
        return None

    def resolve(self, value: object, depth: int = 0) -> object:
        while isinstance(value, Ref) and depth < _MAX_TREE_DEPTH:
            value = self.get(value.number)
            depth += 1
        return value

    def stream(self, number: int) -> bytes | None:
        """The raw (still encoded) bytes of the stream object ``number``."""
        if number not in self.offsets:
            return None
        parser = _Parser(self.data, self.offsets[number])
        header = parser.read()
        if not isinstance(header, dict) or parser.read_token() != b"stream":
            return None
        start = parser.position
        if self.data.startswith(b"\r\n", start):
            start += 2
        elif self.data.startswith(b"\n", start) or self.data.startswith(b"\r", start):
            start += 1
        length = self.resolve(header.get("Length"))
        if isinstance(length, int) and 0 <= length <= len(self.data) - start:
            return self.data[start : start + length]
        end = self.data.find(b"endstream", start)
        return None if end < 0 else self.data[start:end].rstrip(b"\r\n")

    def _unpack_object_stream(self, number: int) -> None:
        header = self.get(number)
        if not isinstance(header, dict) or header.get("Type") != "ObjStm":
            return
        raw = self.stream(number)
        count, first = header.get("N"), header.get("First")
        if raw is None or not isinstance(count, int) or not isinstance(first, int):
            return
        if header.get("Filter") in ("FlateDecode", ["FlateDecode"]):
            try:
                raw = zlib.decompress(raw)
            except zlib.error:
                return
        elif header.get("Filter") is not None:
            return
        pairs = _Parser(raw[:first])
        for _ in range(count):
            packed_number, offset = pairs.read(), pairs.read()
            if isinstance(packed_number, int) and isinstance(offset, int):
                self.packed.setdefault(packed_number, (raw, first + offset))


def _trailer_value(objects: _Objects, key: str) -> object:
    """``key`` of the last trailer (classic or XRef stream) that has it."""
    data = objects.data
    candidates: list[dict[str, object]] = []
    for match in re.finditer(rb"trailer\s*<<", data):
        value = _Parser(data, match.end() - 2).read()
        if isinstance(value, dict):
            candidates.append(value)
    for number in sorted(objects.offsets, key=objects.offsets.__getitem__):
        value = objects.get(number)
        if isinstance(value, dict) and value.get("Type") == "XRef":
            candidates.append(value)
    for candidate in reversed(candidates):
        if key in candidate:
            return candidate[key]
    return None


def decode_text(raw: bytes) -> str:
    """A PDF text string: UTF-16BE or UTF-8 with a byte order mark, else PDFDocEncoding."""
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    return raw.decode("latin-1")  # PDFDocEncoding differs only in a few rarely used bytes


def _page_picture(objects: _Objects, page: dict[str, object]) -> bytes | None:
    resources = objects.resolve(page.get("Resources"))
    xobjects = objects.resolve(resources.get("XObject")) if isinstance(resources, dict) else None
    if not isinstance(xobjects, dict):
        return None
    best: tuple[int, bytes] | None = None
    for value in xobjects.values():
        if not isinstance(value, Ref):
            continue
        header = objects.get(value.number)
        if not isinstance(header, dict) or header.get("Subtype") != "Image":
            continue
        if header.get("Filter") not in ("DCTDecode", ["DCTDecode"]):
            continue
        width, height = header.get("Width"), header.get("Height")
        area = width * height if isinstance(width, int) and isinstance(height, int) else 0
        raw = objects.stream(value.number)
        if raw is not None and (best is None or area > best[0]):
            best = (area, raw)
    return None if best is None else best[1]


def _page_size(box: object) -> tuple[float, float] | None:
    if isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
        x0, y0, x1, y1 = (float(v) for v in box)
        if abs(x1 - x0) > 0 and abs(y1 - y0) > 0:
            return abs(x1 - x0), abs(y1 - y0)
    return None


def _collect_pages(
    objects: _Objects,
    node: object,
    *,
    inherited_box: tuple[float, float],
    pages: list[PdfPage],
    seen: set[int],
    depth: int = 0,
) -> None:
    if isinstance(node, Ref):
        if node.number in seen or depth > _MAX_TREE_DEPTH:
            return
        seen.add(node.number)
    value = objects.resolve(node)
    if not isinstance(value, dict):
        return
    box = _page_size(objects.resolve(value.get("MediaBox"))) or inherited_box
    kids = objects.resolve(value.get("Kids"))
    if value.get("Type") == "Pages" or isinstance(kids, list):
        for kid in kids if isinstance(kids, list) else []:
            _collect_pages(objects, kid, inherited_box=box, pages=pages, seen=seen, depth=depth + 1)
        return
    pages.append(PdfPage(width_pt=box[0], height_pt=box[1], jpeg=_page_picture(objects, value)))


def read_pdf(data: bytes) -> PdfInfo:
    """Pages (in page-tree order) and the Info ``/Subject`` of the PDF in ``data``."""
    if b"%PDF-" not in data[:1024]:
        raise PdfError("not a PDF document (no %PDF- header)")
    objects = _Objects(data)
    if _trailer_value(objects, "Encrypt") is not None:
        raise PdfError("encrypted PDF documents are not supported")
    catalog = objects.resolve(_trailer_value(objects, "Root"))
    pages: list[PdfPage] = []
    if isinstance(catalog, dict):
        _collect_pages(
            objects, catalog.get("Pages"), inherited_box=_LETTER_POINTS, pages=pages, seen=set()
        )
    if not pages:
        raise PdfError("the PDF has no readable pages")
    info = objects.resolve(_trailer_value(objects, "Info"))
    subject = info.get("Subject") if isinstance(info, dict) else None
    subject = objects.resolve(subject)
    return PdfInfo(
        pages=tuple(pages), subject=decode_text(subject) if isinstance(subject, bytes) else None
    )
