"""Build a TrueType font whose glyphs are empty, for the invisible text of searchable PDFs.

Text drawn in render mode 3 shows nothing, but a PDF's fonts should still be embedded: a
viewer that has to substitute a missing font may warn, and PDF/A forbids it. This font is
the smallest honest answer: two glyphs (an empty ``.notdef`` and one blank glyph), each half
an em wide on a 1000-unit em with an ascent of 800 and a descent of 200, and every table a
font loader expects (head, hhea, maxp, hmtx, loca, glyf, cmap, name, OS/2, post). Its cmap
maps no characters: the PDF maps every character code to the blank glyph itself
(``CIDToGIDMap``) and back to Unicode with a ToUnicode CMap. The bytes are built here, so
nothing is shipped.
"""

from __future__ import annotations

import struct

FAMILY = "OcrwatchGlyphless"
UNITS_PER_EM = 1000
ADVANCE = 500  # every glyph is half an em wide
ASCENT, DESCENT = 800, -200
_GLYPHS = 2


def _checksum(table: bytes) -> int:
    padded = table + b"\0" * (-len(table) % 4)
    words: tuple[int, ...] = struct.unpack(f">{len(padded) // 4}I", padded)
    return sum(words) & 0xFFFFFFFF


def _head() -> bytes:
    return struct.pack(
        ">IIIIHHqqhhhhHHhhh",
        0x00010000,  # version
        0x00010000,  # font revision
        0,  # checksum adjustment, set once the whole font is known
        0x5F0F3CF5,  # magic number
        0b1011,  # baseline at y=0, left side bearing at x=0, integer scaling
        UNITS_PER_EM,
        0,  # created
        0,  # modified
        0,  # xMin: every glyph is empty
        DESCENT,
        ADVANCE,
        ASCENT,
        0,  # mac style
        8,  # smallest readable size in pixels
        2,  # font direction hint: left to right, with neutrals
        0,  # short loca offsets
        0,  # glyph data format
    )


def _hhea() -> bytes:
    return struct.pack(
        ">IhhhHhhhhhhhhhhhH",
        0x00010000,
        ASCENT,
        DESCENT,
        0,  # line gap
        ADVANCE,  # widest advance
        0,  # min left side bearing
        0,  # min right side bearing
        ADVANCE,  # max extent: the blank glyph's bounds span its advance
        1,  # caret slope rise: upright
        0,  # caret slope run
        0,  # caret offset
        0,
        0,
        0,
        0,  # reserved
        0,  # metric data format
        _GLYPHS,  # number of horizontal metrics
    )


def _blank_glyph() -> bytes:
    """One contour of two points on the em box's diagonal: it encloses no area, so it paints
    nothing, but gives the glyph the em box as its bounds (pdfium drops the characters of
    turned text whose glyphs have no bounds at all)."""
    header = struct.pack(">hhhhh", 1, 0, DESCENT, ADVANCE, ASCENT)
    points = struct.pack(">HHBB", 1, 0, 0x01, 0x01)  # last point 1, no instructions, on-curve
    deltas = struct.pack(">hhhh", 0, ADVANCE, DESCENT, ASCENT - DESCENT)  # x deltas, y deltas
    return header + points + deltas


def _maxp() -> bytes:
    # version 1.0: glyph count, at most 2 points in 1 contour, no instructions, two zones.
    return struct.pack(">IHHHHHHHHHHHHHH", 0x00010000, _GLYPHS, 2, 1, 0, 0, 2, *([0] * 8))


def _cmap() -> bytes:
    # One Windows Unicode subtable (format 4) with only the mandatory final segment.
    subtable = struct.pack(">HHHHHHHHHHHH", 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0)
    return struct.pack(">HHHHI", 0, 1, 3, 1, 12) + subtable


def _name() -> bytes:
    strings = {1: FAMILY, 2: "Regular", 3: f"{FAMILY}-1", 4: FAMILY, 5: "Version 1.0", 6: FAMILY}
    records, storage = b"", b""
    for name_id, value in strings.items():
        encoded = value.encode("utf-16-be")
        records += struct.pack(">HHHHHH", 3, 1, 0x409, name_id, len(encoded), len(storage))
        storage += encoded
    header = struct.pack(">HHH", 0, len(strings), 6 + len(records))
    return header + records + storage


def _os2() -> bytes:
    return struct.pack(
        ">HhHHHhhhhhhhhhhh10sIIII4sHHHhhhHHII",
        1,  # version
        ADVANCE,  # average width
        400,  # regular weight
        5,  # medium width
        0,  # installable embedding
        *(650, 700, 0, 140, 650, 700, 0, 480),  # sub- and superscript sizes and offsets
        50,  # strikeout size
        250,  # strikeout position
        0,  # no family class
        b"\0" * 10,  # panose: any
        *(0, 0, 0, 0),  # Unicode ranges
        b"NONE",  # vendor
        0x40,  # regular
        0x20,  # first character
        0xFFFF,  # last character
        ASCENT,
        DESCENT,
        0,  # typographic line gap
        ASCENT,
        -DESCENT,
        1,  # code page: Latin 1
        0,
    )


def _post() -> bytes:
    # format 3: no glyph names; underline at -100, 50 thick; monospaced.
    return struct.pack(">IIhhIIIII", 0x00030000, 0, -100, 50, 1, 0, 0, 0, 0)


def glyphless_font() -> bytes:
    """The font's bytes (under a kilobyte), the same on every call."""
    glyph = _blank_glyph()
    tables = {
        b"OS/2": _os2(),
        b"cmap": _cmap(),
        b"glyf": glyph,  # .notdef is empty (no bytes), the blank glyph follows
        b"head": _head(),
        b"hhea": _hhea(),
        b"hmtx": struct.pack(">HhHh", ADVANCE, 0, ADVANCE, 0),
        b"loca": struct.pack(">HHH", 0, 0, len(glyph) // 2),
        b"maxp": _maxp(),
        b"name": _name(),
        b"post": _post(),
    }
    count = len(tables)
    power = 1 << (count.bit_length() - 1)
    directory = struct.pack(
        ">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, count * 16 - power * 16
    )
    offset = len(directory) + 16 * count
    records, body = b"", b""
    head_offset = 0
    for tag in sorted(tables):
        table = tables[tag]
        if tag == b"head":
            head_offset = offset + len(body)
        records += struct.pack(">4sIII", tag, _checksum(table), offset + len(body), len(table))
        body += table + b"\0" * (-len(table) % 4)
    font = bytearray(directory + records + body)
    adjustment = (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF
    font[head_offset + 8 : head_offset + 12] = struct.pack(">I", adjustment)
    return bytes(font)
