"""Read a file to tell what it is, whether it is whole and whether it is safe to upload.

Every read goes through one opener: ``O_NOFOLLOW`` (a symlink is refused, never followed),
``O_NONBLOCK`` (a FIFO swapped in cannot hang the daemon on open; the flag is cleared again
for reading) and an ``fstat`` of the descriptor (only a regular file is read). Only the head
and the tail of a file are read to judge it, except when hashing and when counting the
pages of a PDF without a page count in its header. The opener is ``probe.opening``; whether
a file looks whole is ``probe.completeness``.

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

import hashlib
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
from ocrwatch.errors import InputFileError, TransientError
from ocrwatch.model import Fingerprint
from ocrwatch.probe.completeness import completeness
from ocrwatch.probe.opening import identity, mode_name, open_regular, read_at, size_of

__all__ = [
    "FileFacts",
    "FileKind",
    "completeness",
    "fingerprint",
    "incompleteness",
    "inspect",
    "measure",
    "open_for_upload",
    "refusal",
    "sniff",
]

_CHUNK_BYTES = 1 << 20
_HEAD_BYTES = formats.SNIFF_BYTES

# The formats and their magic bytes are owned by ``ocrwatch.formats``; this is its name here.
FileKind = formats.Format


def sniff(path: Path) -> FileKind:
    """The file's format by its magic bytes; the extension is never consulted.

    Raises ``InputFileError`` for anything but a regular file (or no permission) and lets
    other ``OSError`` through (``FileNotFoundError`` when it vanished).
    """
    with open_regular(path) as file:
        return formats.sniff(file.read(_HEAD_BYTES))


# ---- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the daemon checks before paying for the API."""

    kind: FileKind
    size_bytes: int
    page_count: int | None  # None: not known (see inspect)
    is_encrypted: bool  # PDF that needs a password to open (an owner password alone does not)
    width_px: int | None  # of the first page
    height_px: int | None
    is_too_large: bool  # so large that Pillow refuses to open it at all
    problem: str | None  # why it cannot be read as its kind; None when it can
    largest_page: tuple[int, int, int] | None = None  # width, height, page number (from 1)
    # The page nearest the engine's limit, which is on decoded bytes: with its Pillow mode.
    heaviest_page: tuple[int, int, int, str] | None = None


def inspect(path: Path) -> FileFacts:
    """Kind, pages, encryption and pixel size, from headers (no pixel is decoded).

    Every page of an image is measured (the preflight holds the largest against the target's
    limit in ``formats``). PDF pages come
    from the linearization header when there is one, else from counting ``/Type /Page``
    objects in one streaming pass; objects inside compressed object streams (PDF 1.5+) are
    invisible to that count, so it may be low, and 0 is reported as None.

    Pillow is called with warnings suppressed (``warnings.catch_warnings`` changes process
    state: call this from one thread at a time, as the control thread does).
    """
    with open_regular(path) as file:
        size = size_of(file)
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
    file.seek(0)
    with warnings.catch_warnings():
        # A bomb becomes a fact below; metadata warnings say nothing we act on.
        warnings.simplefilter("ignore")
        try:
            with Image.open(file, formats=[pillow]) as image:
                width, height = image.size
                pages = int(getattr(image, "n_frames", 1))
                largest = (width, height, 1)
                heaviest = (width, height, 1, image.mode)
                entry = formats.spec(kind)
                if pages > 1 and entry is not None and entry.all_pages:
                    # a TIFF's pages may differ
                    largest, heaviest = _largest_page(image, pages, heaviest)
        except Image.DecompressionBombError as exc:
            return FileFacts(kind, size, None, False, None, None, True, f"too large: {exc}")
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError) as exc:
            problem = f"unreadable {kind}: {exc}"
            return FileFacts(kind, size, pages, False, width, height, False, problem)
    return FileFacts(kind, size, pages, False, width, height, False, None, largest, heaviest)


def _largest_page(
    image: Image.Image, pages: int, first: tuple[int, int, int, str]
) -> tuple[tuple[int, int, int], tuple[int, int, int, str]]:
    """The page with the most pixels, and the one nearest the engine's limit for its mode.

    Each frame's header is read, no pixel is decoded.
    """
    largest, heaviest = first[:3], first

    def load(page: tuple[int, int, int, str]) -> float:
        width, height, _, mode = page
        return width * height / formats.max_page_pixels(formats.Target.ENGINE, mode)

    for index in range(1, min(pages, _MAX_MEASURED_PAGES)):
        image.seek(index)
        width, height = image.size
        if width * height > largest[0] * largest[1]:
            largest = (width, height, index + 1)
        if load(page := (width, height, index + 1, image.mode)) > load(heaviest):
            heaviest = page
    return largest, heaviest


_PAGE_OBJECT = re.compile(rb"/Type\s{0,16}/Page(?![A-Za-z])")
_PAGE_OBJECT_MAX_BYTES = 40  # longest possible match plus the lookahead byte


def _pdf_facts(file: BinaryIO, size: int) -> FileFacts:
    head = read_at(file, 0, 4096)
    tail = read_at(file, max(0, size - 4096), 4096)
    trailer = tail
    xref = re.search(rb"startxref\s+(\d+)", tail)
    if xref is not None and int(xref[1]) < size:  # an xref stream's dictionary is there
        trailer += read_at(file, int(xref[1]), 4096)
    linearized = re.search(rb"/Linearized\b.{0,512}?/N\s+(\d+)", head, re.DOTALL)
    pages = int(linearized[1]) if linearized is not None else _count_page_objects(file) or None
    locked = b"/Encrypt" in trailer and _needs_password(file)
    return FileFacts(FileKind.PDF, size, pages, locked, None, None, False, None)


def _needs_password(file: BinaryIO) -> bool:
    """Whether an encrypted PDF stays shut with the empty user password.

    A PDF with only an owner password (permissions: no printing, no editing) opens in any
    viewer without asking, as qpdf opens it here; only a user password keeps it shut. A PDF
    qpdf cannot parse is left to the completeness check and the service to judge.
    """
    # Only here: most PDFs are not encrypted, and pikepdf is a large import.
    import pikepdf  # noqa: PLC0415

    file.seek(0)
    try:
        with pikepdf.open(file):
            return False
    except pikepdf.PasswordError:
        return True
    except (pikepdf.PdfError, ValueError, OSError):
        return False


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
        return identity(st)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with open_regular(path) as file:
        before = os.fstat(file.fileno())
        while read := file.readinto(buffer):
            digest.update(view[:read])
        after = os.fstat(file.fileno())
    if not (identity(st).same_file_as(identity(before)) and
            identity(before).same_file_as(identity(after))):  # fmt: skip
        raise TransientError(f"{path.name}: changed while it was being hashed")
    return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest.hexdigest())


def incompleteness(path: Path, *, size: int) -> str | None:
    """Why the file (``size`` bytes) does not look completely written yet; None if it does.

    The one test the daemon's settling, ``ocrwatch explain`` and ``ocrwatch status`` share.
    Content of an unknown kind counts as complete: the preflight refuses it with its reason.
    """
    if size == 0:
        return "empty file"  # some writers create the file long before the first byte arrives
    kind = sniff(path)
    return None if kind is FileKind.UNKNOWN else completeness(path, kind)


# Hashing for a reason file is a courtesy, not a check: a huge file is not read twice for it.
MEASURE_HASH_MAX_BYTES = 256 << 20


def measure(path: Path) -> tuple[int | None, str | None]:
    """Size and SHA-256 of a file that failed before it was fingerprinted, for its reason file.

    The size comes from ``lstat`` (no read permission needed). The hash is taken through the
    safe opener only when the file is readable, regular and at most
    ``MEASURE_HASH_MAX_BYTES``; otherwise it is None. Never raises for an unusable file.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return None, None
    if st.st_size > MEASURE_HASH_MAX_BYTES:
        return st.st_size, None
    try:
        return st.st_size, fingerprint(path, with_hash=True).sha256
    except (OSError, InputFileError, TransientError):
        return st.st_size, None


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
        return mode_name(st.st_mode)
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
    return open_regular(path, expected=expected)
