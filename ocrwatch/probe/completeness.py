"""Does a file look whole: its format's end marker, declared length, or page directories.

Reads at most the first and the last 64 KiB of a file, plus a TIFF's directories. A file
that does not look whole may still be being written; the caller decides how long to wait.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

from ocrwatch import formats
from ocrwatch.probe.opening import open_regular, read_at, size_of

FileKind = formats.Format
_TAIL_BYTES = 64 * 1024
_PDF_EOF_WINDOW_BYTES = 2048


def completeness(path: Path, kind: FileKind) -> str | None:
    """None when the file looks whole, else a short reason (a writer may still be busy).

    Reads at most the first and the last 64 KiB, plus the TIFF directories.
    """
    with open_regular(path) as file:
        size = size_of(file)
        if size == 0:
            return "empty file"
        if kind in (FileKind.TIFF, FileKind.BIGTIFF):
            return _tiff_problem(file, size)
        tail = read_at(file, max(0, size - _TAIL_BYTES), _TAIL_BYTES)
        head = read_at(file, 0, 64 if kind is not FileKind.PNM else _PNM_HEADER_BYTES)
    padded = tail.rstrip(b"\x00")  # some writers pad to a block size with zeros
    if kind is FileKind.JPEG:
        return None if padded.endswith(b"\xff\xd9") else "incomplete JPEG (no end marker)"
    if kind is FileKind.PNG:
        return None if padded.endswith(b"IEND\xaeB`\x82") else "incomplete PNG (no IEND chunk)"
    if kind is FileKind.GIF:
        # The trailer ";" follows a block terminator; a bare ";" may be image data.
        return None if padded.endswith(b"\x00;") else "incomplete GIF (no trailer)"
    if kind is FileKind.BMP:
        declared, pixels_at = struct.unpack_from("<I4xI", head, 2)
        needed = declared or pixels_at  # 0 is allowed in the size field
        return None if size >= needed else f"incomplete BMP ({size} of {needed} bytes)"
    if kind is FileKind.PDF:
        return _pdf_problem(tail, size)
    if kind is FileKind.PNM:
        return _pnm_problem(head, size)
    if kind is FileKind.WEBP:
        (riff_bytes,) = struct.unpack_from("<I", head, 4)  # what follows the first 8 bytes
        needed = 8 + riff_bytes
        return None if size >= needed else f"incomplete WebP ({size} of {needed} bytes)"
    return None


_PNM_HEADER_BYTES = 4096  # comments may sit between the header's numbers
_PNM_TOKEN = re.compile(rb"(?:\s+|#[^\n]*\n)*(\d+)")


def _pnm_problem(head: bytes, size: int) -> str | None:
    """A binary PNM (P4, P5, P6: what scanimage streams) is whole once all its rows are there."""
    magic = head[1:2]
    if magic not in (b"4", b"5", b"6"):
        return None  # plain-text PNM has no size to check against
    numbers: list[int] = []
    at = 2
    for _ in range(2 if magic == b"4" else 3):
        match = _PNM_TOKEN.match(head, at)
        if match is None:
            return "incomplete PNM (header cut off)"
        numbers.append(int(match[1]))
        at = match.end()
    width, height = numbers[:2]
    sample_bytes = 2 if len(numbers) == 3 and numbers[2] > 255 else 1
    row_bytes = {b"4": (width + 7) // 8, b"5": width * sample_bytes}.get(
        magic, 3 * width * sample_bytes
    )
    needed = at + 1 + row_bytes * height  # one whitespace byte ends the header
    return None if size >= needed else f"incomplete PNM ({size} of {needed} bytes)"


def _pdf_problem(tail: bytes, size: int) -> str | None:
    window_start = max(0, len(tail) - _PDF_EOF_WINDOW_BYTES)
    eof_at = tail.rfind(b"%%EOF", window_start)
    if eof_at == -1:
        return "incomplete PDF (no %%EOF at the end)"
    xref = re.search(rb"startxref\s+(\d+)\s*$", tail[:eof_at])
    if xref is None:
        return "incomplete PDF (no startxref before %%EOF)"
    if int(xref[1]) >= size:
        return "damaged PDF (startxref points past the end)"
    return None


_TIFF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4,
                    12: 8, 13: 4, 16: 8, 17: 8, 18: 8}  # fmt: skip
_TIFF_INT_FORMATS = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
_TIFF_DATA_TAGS = ((273, 279), (324, 325))  # (Strip|Tile)Offsets, (Strip|Tile)ByteCounts
_TIFF_MAX_PAGES = 100_000
_TIFF_MAX_VALUES = 1_000_000


def _tiff_problem(file: BinaryIO, size: int) -> str | None:
    """Walk the IFD chain: every directory, tag value and strip must lie within the file."""
    header = read_at(file, 0, 16)
    order = "<" if header[:2] == b"II" else ">"
    big = header[2:4] in (b"+\x00", b"\x00+")
    if len(header) < (16 if big else 8):
        return "incomplete TIFF (header cut off)"
    offset_format, count_format = ("Q", "Q") if big else ("I", "H")
    entry_bytes, inline_bytes = (20, 8) if big else (12, 4)
    (ifd,) = struct.unpack_from(order + offset_format, header, 8 if big else 4)
    pages = 0
    seen: set[int] = set()
    while ifd:
        page = f"page {pages + 1}"
        if ifd in seen or pages >= _TIFF_MAX_PAGES:
            return "damaged TIFF (its page directories loop)"
        seen.add(ifd)
        count_bytes = struct.calcsize(count_format)
        raw = read_at(file, ifd, count_bytes)
        if len(raw) < count_bytes:
            return f"incomplete TIFF ({page} directory is past the end)"
        (count,) = struct.unpack(order + count_format, raw)
        table_bytes = count * entry_bytes + inline_bytes
        if ifd + count_bytes + table_bytes > size:
            return f"incomplete TIFF ({page} directory is cut off)"
        table = read_at(file, ifd + count_bytes, table_bytes)
        values: dict[int, list[int]] = {}
        for index in range(count):
            entry = table[index * entry_bytes : (index + 1) * entry_bytes]
            tag, kind, n = struct.unpack_from(order + "HH" + offset_format, entry)
            data_bytes = _TIFF_TYPE_BYTES.get(kind, 1) * n
            data = entry[entry_bytes - inline_bytes :]
            if data_bytes > inline_bytes:
                (where,) = struct.unpack(order + offset_format, data)
                if where + data_bytes > size:
                    return f"incomplete TIFF ({page} tag {tag} is past the end)"
                if tag in {t for pair in _TIFF_DATA_TAGS for t in pair}:
                    data = read_at(file, where, min(data_bytes, _TIFF_MAX_VALUES * 8))
            if kind in _TIFF_INT_FORMATS and n <= _TIFF_MAX_VALUES:
                fmt = f"{order}{n}{_TIFF_INT_FORMATS[kind]}"
                if struct.calcsize(fmt) <= len(data):
                    values[tag] = list(struct.unpack_from(fmt, data))
        for offsets_tag, counts_tag in _TIFF_DATA_TAGS:
            pairs = zip(values.get(offsets_tag, ()), values.get(counts_tag, ()), strict=False)
            if any(start + length > size for start, length in pairs):
                return f"incomplete TIFF ({page} image data is cut off)"
        (ifd,) = struct.unpack_from(order + offset_format, table, count * entry_bytes)
        pages += 1
    return None if pages else "incomplete TIFF (no page directory yet)"
