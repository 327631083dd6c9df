"""Read a file to tell what it is, whether it is whole and whether it is safe to upload.

Every read goes through one opener: ``O_NOFOLLOW`` (a symlink is refused, never followed),
``O_NONBLOCK`` (a FIFO swapped in cannot hang the daemon on open; the flag is cleared again
for reading) and an ``fstat`` of the descriptor (only a regular file is read). Only the head
and the tail of a file are read to judge it, except when hashing and when counting the
pages of a PDF without a page count in its header.

Residual risks, accepted and documented rather than hidden:

- TOCTOU: ``refusal`` answers for the moment of its ``lstat``; the path can be swapped
  afterwards. ``open_for_upload`` therefore checks the *open descriptor* against the
  fingerprint taken when the file settled, so what is uploaded is the inode that was
  checked or nothing. ``O_NOFOLLOW`` guards only the last path component: a folder of the
  path swapped for a symlink between ``refusal`` and the open is not detected.
- Hard links: a regular file inside the inbox may be a hard link to a file elsewhere, and
  ``realpath`` cannot tell. Whoever can write to the inbox can then have ocrwatch read any
  file that ocrwatch's user can read and hard-link to (``fs.protected_hardlinks=1``, the
  default on current distributions, limits that to files the writer owns). Run ocrwatch
  as a user that reads nothing secret.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from PIL import Image

from ocrwatch import formats, policy
from ocrwatch.errors import InputFileError, SourceChanged, TransientError
from ocrwatch.model import Fingerprint

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK_BYTES = 1 << 20
_TAIL_BYTES = 64 * 1024
_HEAD_BYTES = formats.SNIFF_BYTES
_PDF_EOF_WINDOW_BYTES = 2048


# The formats and their magic bytes are owned by ``ocrwatch.formats``; this is its name here.
FileKind = formats.Format


def _mode_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _identity(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_regular(path: Path, *, expected: Fingerprint | None = None) -> io.BufferedReader:
    """Open ``path`` for reading if it is (still) a regular file; see the module docstring."""
    changed = "" if expected is None else "changed since it settled: now a "
    # After settling, a different kind of file at the path is new content: settle it again.
    error = InputFileError if expected is None else SourceChanged
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except PermissionError as exc:
        raise InputFileError("permission denied", path=str(path)) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{changed}symbolic link", path=str(path)) from exc
        if exc.errno == errno.ENXIO:  # what opening a Unix socket says
            raise error(f"{changed}socket", path=str(path)) from exc
        raise
    try:
        _check_descriptor(fd, path, expected=expected)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_descriptor(fd: int, path: Path, *, expected: Fingerprint | None) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        if expected is None:
            raise InputFileError(_mode_name(st.st_mode), path=str(path))
        raise SourceChanged(
            f"changed since it settled: now a {_mode_name(st.st_mode)}", path=str(path)
        )
    if expected is not None and not expected.same_file_as(_identity(st)):
        raise SourceChanged("changed since it settled", path=str(path))


def _read_at(file: BinaryIO, offset: int, length: int) -> bytes:
    file.seek(offset)
    return file.read(length)


def _size(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_size


def sniff(path: Path) -> FileKind:
    """The file's format by its magic bytes; the extension is never consulted.

    Raises ``InputFileError`` for anything but a regular file (or no permission) and lets
    other ``OSError`` through (``FileNotFoundError`` when it vanished).
    """
    with _open_regular(path) as file:
        return formats.sniff(file.read(_HEAD_BYTES))


# ---- completeness -----------------------------------------------------------------------


def completeness(path: Path, kind: FileKind) -> str | None:
    """None when the file looks whole, else a short reason (a writer may still be busy).

    Reads at most the first and the last 64 KiB, plus the TIFF directories.
    """
    with _open_regular(path) as file:
        size = _size(file)
        if size == 0:
            return "empty file"
        if kind in (FileKind.TIFF, FileKind.BIGTIFF):
            return _tiff_problem(file, size)
        tail = _read_at(file, max(0, size - _TAIL_BYTES), _TAIL_BYTES)
        head = _read_at(file, 0, 64 if kind is not FileKind.PNM else _PNM_HEADER_BYTES)
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
    header = _read_at(file, 0, 16)
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
        raw = _read_at(file, ifd, count_bytes)
        if len(raw) < count_bytes:
            return f"incomplete TIFF ({page} directory is past the end)"
        (count,) = struct.unpack(order + count_format, raw)
        table_bytes = count * entry_bytes + inline_bytes
        if ifd + count_bytes + table_bytes > size:
            return f"incomplete TIFF ({page} directory is cut off)"
        table = _read_at(file, ifd + count_bytes, table_bytes)
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
                    data = _read_at(file, where, min(data_bytes, _TIFF_MAX_VALUES * 8))
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


# ---- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the daemon checks before paying for the API."""

    kind: FileKind
    size_bytes: int
    page_count: int | None  # None: not known (see inspect)
    is_encrypted: bool  # PDF with /Encrypt in its trailer
    width_px: int | None  # of the first page
    height_px: int | None
    is_too_large: bool  # a page has more than formats.MAX_PAGE_PIXELS pixels
    problem: str | None  # why it cannot be read as its kind; None when it can


def inspect(path: Path) -> FileFacts:
    """Kind, pages, encryption and pixel size, from headers (no pixel is decoded).

    Every page of an image is measured against ``formats.MAX_PAGE_PIXELS``. PDF pages come
    from the linearization header when there is one, else from counting ``/Type /Page``
    objects in one streaming pass; objects inside compressed object streams (PDF 1.5+) are
    invisible to that count, so it may be low, and 0 is reported as None.

    Pillow is called with warnings suppressed (``warnings.catch_warnings`` changes process
    state: call this from one thread at a time, as the control thread does).
    """
    with _open_regular(path) as file:
        size = _size(file)
        kind = formats.sniff(file.read(_HEAD_BYTES))
        if kind is FileKind.PDF:
            return _pdf_facts(file, size)
        entry = formats.spec(kind)
        if entry is None or entry.pillow is None:
            return FileFacts(kind, size, None, False, None, None, False, None)
        return _image_facts(file, kind, entry.pillow, size)


_MAX_MEASURED_PAGES = 10_000


def _image_facts(file: BinaryIO, kind: FileKind, pillow: str, size: int) -> FileFacts:
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    problem: str | None = None
    file.seek(0)
    with warnings.catch_warnings():
        # A bomb becomes a fact below; metadata warnings say nothing we act on.
        warnings.simplefilter("ignore")
        try:
            with Image.open(file, formats=[pillow]) as image:
                width, height = image.size
                pages = int(getattr(image, "n_frames", 1))
                problem = formats.page_pixels_problem(width, height)
                entry = formats.spec(kind)
                if problem is None and pages > 1 and entry is not None and entry.all_pages:
                    problem = _later_page_problem(image, pages)  # a TIFF's pages may differ
        except Image.DecompressionBombError as exc:
            return FileFacts(kind, size, None, False, None, None, True, f"too large: {exc}")
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError) as exc:
            problem = f"unreadable {kind}: {exc}"
            return FileFacts(kind, size, pages, False, width, height, False, problem)
    too_large = problem is not None
    return FileFacts(kind, size, pages, False, width, height, too_large, problem)


def _later_page_problem(image: Image.Image, pages: int) -> str | None:
    """A page after the first that is too large (each frame's header is read, no pixels)."""
    for index in range(1, min(pages, _MAX_MEASURED_PAGES)):
        image.seek(index)
        problem = formats.page_pixels_problem(*image.size, page=index + 1)
        if problem is not None:
            return problem
    return None


_PAGE_OBJECT = re.compile(rb"/Type\s{0,16}/Page(?![A-Za-z])")
_PAGE_OBJECT_MAX_BYTES = 40  # longest possible match plus the lookahead byte


def _pdf_facts(file: BinaryIO, size: int) -> FileFacts:
    head = _read_at(file, 0, 4096)
    tail = _read_at(file, max(0, size - 4096), 4096)
    trailer = tail
    xref = re.search(rb"startxref\s+(\d+)", tail)
    if xref is not None and int(xref[1]) < size:  # an xref stream's dictionary is there
        trailer += _read_at(file, int(xref[1]), 4096)
    linearized = re.search(rb"/Linearized\b.{0,512}?/N\s+(\d+)", head, re.DOTALL)
    pages = int(linearized[1]) if linearized is not None else _count_page_objects(file) or None
    return FileFacts(FileKind.PDF, size, pages, b"/Encrypt" in trailer, None, None, False, None)


def _count_page_objects(file: BinaryIO) -> int:
    file.seek(0)
    count = 0
    carry = b""
    while chunk := file.read(_CHUNK_BYTES):
        buffer = carry + chunk
        limit = len(buffer) - _PAGE_OBJECT_MAX_BYTES  # later matches are counted next time
        count += sum(1 for m in _PAGE_OBJECT.finditer(buffer) if m.start() < limit)
        carry = buffer[max(0, limit) :]
    return count + len(_PAGE_OBJECT.findall(carry))


# ---- identity and safety ----------------------------------------------------------------


def fingerprint(path: Path, *, with_hash: bool) -> Fingerprint:
    """Device, inode, size and mtime from ``lstat``; with a streaming SHA-256 if asked.

    Raises ``TransientError`` if the file changes while it is hashed (it has not settled).
    """
    st = os.lstat(path)
    if not with_hash:
        return _identity(st)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with _open_regular(path) as file:
        before = os.fstat(file.fileno())
        while read := file.readinto(buffer):
            digest.update(view[:read])
        after = os.fstat(file.fileno())
    if not (_identity(st).same_file_as(_identity(before)) and
            _identity(before).same_file_as(_identity(after))):  # fmt: skip
        raise TransientError(f"{path.name}: changed while it was being hashed")
    return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest.hexdigest())


def refusal(path: Path, *, inbox_root: Path) -> str | None:
    """None for a regular file really inside the inbox, else why it is refused.

    Lets ``OSError`` other than "not found" and "permission denied" through: an ``ESTALE``
    or ``EIO`` from a share is worth another try, not a verdict on the file.
    """
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "vanished"
    except PermissionError:
        return "permission denied"
    if not stat.S_ISREG(st.st_mode):
        return _mode_name(st.st_mode)
    real = PurePath(os.path.realpath(path))
    root = PurePath(os.path.realpath(inbox_root))
    if real == root or not policy.is_within(real, root):
        return "outside the inbox"
    return None


def open_for_upload(path: Path, *, expected: Fingerprint) -> BinaryIO:
    """Open the settled file for reading, or raise ``InputFileError`` if it is not the same.

    The descriptor is checked, not the path, so a file swapped after ``refusal`` is never
    uploaded. ``FileNotFoundError`` passes through when it vanished. The caller closes it.
    """
    return _open_regular(path, expected=expected)
