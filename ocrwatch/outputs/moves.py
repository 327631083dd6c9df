"""Low-level moves: renames that never replace, cross-filesystem copies, durable directories.

These are the steps ``ocrwatch.outputs`` builds its writes and moves from. A rename refuses
to replace its target (``renameat2(RENAME_NOREPLACE)``; where a filesystem lacks it,
``link`` + ``unlink``; where hard links are refused too (vfat, SMB, ``fs.protected_hardlinks``
on files of other users), a check followed by ``rename``, which has a tiny window). Names are
handled as bytes: undecodable (surrogate-escaped) and NFD names survive unchanged, and every
name this module makes stays within ``NAME_MAX_BYTES``, cut only at UTF-8 character
boundaries. OSErrors (ENOSPC, EROFS, EACCES...) propagate unchanged for the caller to classify.

Crash points. During a same-filesystem move: the rename is atomic; after the ``link``
fallback the file may have two names (the next move of it notices the shared inode and just
unlinks the source). During a cross-filesystem move: the copy is completed and renamed into
place before the source is unlinked, so the file is in one place or two, never zero.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAME_MAX_BYTES = 255
MAX_NAME_RACES = 100  # another writer taking the chosen name this often means something is wrong
_TEMP_MARK = ".ocrwatch-"
TEMP_PATTERN = re.compile(r"\..*\.ocrwatch-[0-9a-f]+\.tmp", re.DOTALL)
_COPY_CHUNK_BYTES = 1 << 20
_NO_FLAG_SUPPORT = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class CrossDeviceMoveError(OSError):
    """A symlink, FIFO or other special file cannot be moved to another filesystem."""


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no glibc >= 2.28 (or musl without it)
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p) * 2 + (ctypes.c_uint,)
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


# --- names -------------------------------------------------------------------------------


def _cut(raw: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``raw``, never splitting a UTF-8 character."""
    if len(raw) <= limit:
        return raw
    end = max(limit, 0)
    for _ in range(3):  # a UTF-8 character has at most three continuation bytes
        if end == 0 or raw[end] & 0xC0 != 0x80:
            break
        end -= 1
    return raw[:end]


def candidates(target: Path, *, max_name_bytes: int) -> Iterator[Path]:
    """``target``, ``stem (1).ext``, ``stem (2).ext``..., each fitted to ``max_name_bytes``."""
    raw = os.fsencode(target.name)
    dot = raw.rfind(b".")
    stem, suffix = (raw[:dot], raw[dot:]) if 0 < dot < len(raw) - 1 else (raw, b"")
    if len(suffix) > max_name_bytes // 2:  # not really an extension; keep the name's start
        stem, suffix = raw, b""
    for number in itertools.count():
        marker = f" ({number})".encode() if number else b""
        kept = _cut(stem, max_name_bytes - len(marker) - len(suffix))
        yield target.with_name(os.fsdecode(kept + marker + suffix))


def free_name(target: Path) -> Path:
    """``target`` if nothing (not even a dangling symlink) is there, else ``stem (N).ext``."""
    for candidate in candidates(target, max_name_bytes=NAME_MAX_BYTES):
        if not os.path.lexists(candidate):
            return candidate
    raise AssertionError("unreachable: the candidates never run out")


def temp_name(name: str) -> str:
    """A fresh hidden temp name for ``name`` that ``TEMP_PATTERN`` matches."""
    token = secrets.token_hex(4)
    room = NAME_MAX_BYTES - len(f".{_TEMP_MARK}{token}.tmp")
    return "." + os.fsdecode(_cut(os.fsencode(name), room)) + f"{_TEMP_MARK}{token}.tmp"


def same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# --- low-level steps ---------------------------------------------------------------------


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FLAG_SUPPORT:  # some filesystems cannot fsync a directory
            raise
    finally:
        os.close(fd)


def create_temp(target: Path) -> tuple[Path, int]:
    """A new temp file (mode 0o600) beside ``target``, and its open descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(MAX_NAME_RACES):
        temp = target.with_name(temp_name(target.name))
        try:
            return temp, os.open(temp, flags, 0o600)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp name", os.fspath(target))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def unlink_quietly(path: Path) -> None:
    # Only on a path already failing: the first error is the one the caller must see.
    with contextlib.suppress(OSError):
        path.unlink()


def delete_file(path: Path) -> None:
    """Remove ``path`` durably; a missing file is fine."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_directory(path.parent)


def rename_no_replace(source: Path, final: Path) -> None:
    """Rename without ever replacing ``final``; EEXIST raises ``FileExistsError``."""
    if _RENAMEAT2 is not None:
        result = _RENAMEAT2(
            _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(final), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in _NO_FLAG_SUPPORT:
            raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(final))
    try:
        os.link(source, final, follow_symlinks=False)  # links a symlink itself
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "name taken", os.fspath(final)) from exc
        source.rename(final)  # the residual race of filesystems without either primitive
        return
    source.unlink()


def move_exact(source: Path, final: Path, info: os.stat_result) -> None:
    """Move ``source`` to exactly ``final`` (which must not exist), durably."""
    try:
        rename_no_replace(source, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if not stat.S_ISREG(info.st_mode):
            raise CrossDeviceMoveError(
                errno.EXDEV, "cannot move a special file across filesystems", os.fspath(source)
            ) from exc
        _copy_into_place(source, final, info)
        delete_file(source)  # only now: until here the file is in at least one place
        return
    fsync_directory(final.parent)
    if final.parent != source.parent:
        fsync_directory(source.parent)


def _copy_into_place(source: Path, final: Path, info: os.stat_result) -> None:
    """Copy a regular file to ``final`` on another filesystem via a fsynced temp file."""
    # O_NONBLOCK: if the name was swapped for a FIFO since lstat, open must not hang.
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not same_inode(os.fstat(src), info):
            raise OSError(errno.EAGAIN, "the file was replaced while being moved", str(source))
        temp, dst = create_temp(final)
        try:
            try:
                while chunk := os.read(src, _COPY_CHUNK_BYTES):
                    write_all(dst, chunk)
                os.fchmod(dst, stat.S_IMODE(info.st_mode))
                os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
                os.fsync(dst)
            finally:
                os.close(dst)
            rename_no_replace(temp, final)
        except BaseException:
            unlink_quietly(temp)
            raise
    finally:
        os.close(src)
    fsync_directory(final.parent)
