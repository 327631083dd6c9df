"""The one way ocrwatch opens a file in an inbox: no symlink followed, no FIFO waited on.

``open_regular`` opens with ``O_NOFOLLOW`` (a symlink is refused, never followed) and
``O_NONBLOCK`` (a FIFO swapped in cannot hang the daemon on open; the flag is cleared again
for reading), and checks the descriptor with ``fstat`` (only a regular file is read; with an
expected fingerprint, only that very file). See ``ocrwatch.probe`` for the residual risks.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from ocrwatch.errors import InputFileError, SourceChanged
from ocrwatch.model import Fingerprint

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def mode_name(mode: int) -> str:
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


def identity(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def open_regular(path: Path, *, expected: Fingerprint | None = None) -> io.BufferedReader:
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
            raise InputFileError(mode_name(st.st_mode), path=str(path))
        raise SourceChanged(
            f"changed since it settled: now a {mode_name(st.st_mode)}", path=str(path)
        )
    if expected is not None and not expected.same_file_as(identity(st)):
        raise SourceChanged("changed since it settled", path=str(path))


def read_at(file: BinaryIO, offset: int, length: int) -> bytes:
    file.seek(offset)
    return file.read(length)


def size_of(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_size
