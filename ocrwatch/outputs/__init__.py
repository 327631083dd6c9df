"""Durable file operations: atomic sidecar writes, no-replace moves, error moves with a reason.

Invariants. A reader never sees a partial file under a final name: every write goes to a
temp file ``.<name>.ocrwatch-<hex>.tmp`` in the target's own directory, is fsynced, then
renamed over the target, and the directory is fsynced. Moves never overwrite: the target
name gets `` (1)``, `` (2)``... until it is free, and the rename itself refuses to replace
(how, and the window each fallback leaves, is in ``ocrwatch.outputs.moves``). Names are
handled as bytes: undecodable (surrogate-escaped) and NFD names survive unchanged, and every
name this package makes stays within ``NAME_MAX_BYTES``. OSErrors (ENOSPC, EROFS, EACCES...)
propagate unchanged for the caller to classify.

Crash points. During a write: at most a temp file is left; ``remove_stale_temp_files``
deletes it. During a move: see ``ocrwatch.outputs.moves``; the file is in one place or two,
never zero. During ``move_to_error``: the reason file is written first, so a crash leaves a
reason file beside a missing file while the source is still in the inbox; repeating the call
reuses that name.

Ownership. Files are created by the daemon's user; their group is its group, or the
directory's group where the directory is setgid. Sidecars and reason files get ``0o666`` minus
the process umask (the unit's ``UMask=``: 0027 gives 0640), as any program's new files do;
the mode is set with ``fchmod`` only after the data is written and synced, so the file is
``0o600`` while it is still a temp file. New directories get ``0o777`` minus the umask.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ocrwatch.outputs.moves import (
    MAX_NAME_RACES,
    NAME_MAX_BYTES,
    TEMP_PATTERN,
    CrossDeviceMoveError,
    candidates,
    create_temp,
    delete_file,
    free_name,
    fsync_directory,
    move_exact,
    rename_no_replace,
    same_inode,
    temp_name,
    unlink_quietly,
    write_all,
)

__all__ = [
    "NAME_MAX_BYTES",
    "REASON_SUFFIX",
    "CrossDeviceMoveError",
    "delete_file",
    "display_path",
    "ensure_directory",
    "free_name",
    "move_file",
    "move_to_error",
    "probe_writable",
    "reason_file_path",
    "remove_stale_temp_files",
    "write_atomic",
    "write_json_atomic",
]

REASON_SUFFIX = ".error.json"
_REASON_READ_LIMIT_BYTES = 1 << 20


def ensure_directory(path: Path) -> None:
    """Create ``path`` and any missing parents, each made durable in its own parent."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        if os.path.lexists(current):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fspath(current))
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # created by someone else meanwhile; they own its durability
        fsync_directory(directory.parent)


def process_umask() -> int:
    """This process's umask, read without changing it (Linux 4.7+ shows it in /proc)."""
    try:
        with Path("/proc/self/status").open(encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)  # no /proc: the only other way to read it is to set it
    os.umask(current)
    return current


def write_atomic(target: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` so that readers see the old file or the new, whole.

    ``mode`` defaults to ``0o666`` minus the umask, the mode any new file would get.
    """
    directory = target.parent
    ensure_directory(directory)
    final_mode = 0o666 & ~process_umask() if mode is None else mode
    temp, fd = create_temp(target)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
            os.fchmod(fd, final_mode)  # created 0o600: no one reads it early under a looser mode
        finally:
            os.close(fd)
        temp.replace(target)  # a symlink at ``target`` is replaced, never followed
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_directory(directory)


def write_json_atomic(target: Path, value: Mapping[str, Any]) -> None:
    """Write ``value`` as UTF-8 JSON (indent 2, sorted keys, trailing newline), atomically.

    Paths may be passed as ``Path``. A string that is not valid Unicode (a surrogate-escaped
    file name) is written in a readable escaped form (``\\xff`` for the byte 0xFF), and when
    it is a mapping value under ``key``, ``<key>_bytes`` holds the exact bytes in base64.
    Other values JSON does not know are written as their ``str()``.
    """
    text = json.dumps(_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    write_atomic(target, (text + "\n").encode("utf-8"))


def move_file(source: Path, target: Path) -> Path:
    """Move ``source`` to ``target`` or the next free name, never overwriting; return it.

    Symlinks, FIFOs and other special files are moved as themselves, never followed or
    opened; across filesystems they raise ``CrossDeviceMoveError``.
    """
    info = _lstat_movable(source)
    ensure_directory(target.parent)
    for _ in range(MAX_NAME_RACES):
        final, is_leftover = _choose_move_name(target, info)
        if is_leftover:  # a crash between link and unlink: finish that move
            delete_file(source)
            return final
        try:
            move_exact(source, final, info)
        except FileExistsError:
            continue  # the name was taken between the check and the move
        except FileNotFoundError:
            if not os.path.lexists(source):
                raise
            ensure_directory(target.parent)  # the target folder vanished meanwhile
            continue
        return final
    raise FileExistsError(errno.EEXIST, "no free name after repeated races", os.fspath(target))


def reason_file_path(moved: Path) -> Path:
    """Where the reason file of a file moved to the error folder as ``moved`` lives."""
    return moved.with_name(moved.name + REASON_SUFFIX)


def move_to_error(source: Path, target: Path, *, reason: Mapping[str, Any]) -> Path:
    """Move ``source`` into the error folder near ``target`` with a reason file; return it.

    The reason file holds ``reason`` plus ``source_path`` and ``moved_to`` (set here; an
    undecodable path also gets ``source_path_bytes``, see ``write_json_atomic``).
    It is written first, under the final name, then the file is moved beside it. If the
    file's earlier attempt left a reason file (``source_path`` matching) without its file, that
    name is reused, so repeating the call after a crash does not make `` (1)`` copies.
    A missing source raises ``FileNotFoundError`` and writes nothing: the file is gone and
    the caller forgets the job (if the caller itself crashed right after a completed move,
    the file and its reason file are already in the error folder).
    """
    info = _lstat_movable(source)
    ensure_directory(target.parent)
    for _ in range(MAX_NAME_RACES):
        final, is_leftover = _choose_error_name(source, target, info)
        reason_path = reason_file_path(final)
        write_json_atomic(reason_path, {**reason, "source_path": source, "moved_to": final})
        if is_leftover:
            delete_file(source)
            return final
        try:
            move_exact(source, final, info)
        except FileExistsError:
            delete_file(reason_path)  # it would describe someone else's file
            continue
        except FileNotFoundError:
            if not os.path.lexists(source):
                delete_file(reason_path)
                raise
            ensure_directory(target.parent)  # the error folder vanished meanwhile
            continue
        return final
    raise FileExistsError(errno.EEXIST, "no free name after repeated races", os.fspath(target))


def remove_stale_temp_files(
    directory: Path, *, older_than_seconds: float, now: float, recursive: bool = False
) -> list[Path]:
    """Remove this package's temp files in ``directory`` older than the cutoff.

    With ``recursive``, every folder below is cleaned too (mirrored subfolders of an output,
    error or done folder); symlinked folders are not entered. Folders that vanish or cannot
    be read are skipped.
    """
    if not recursive:
        return _remove_stale_temp_files_in(directory, cutoff=now - older_than_seconds)
    removed: list[Path] = []
    for folder, _subfolders, _files in os.walk(directory, followlinks=False):
        removed += _remove_stale_temp_files_in(Path(folder), cutoff=now - older_than_seconds)
    return removed


def _remove_stale_temp_files_in(directory: Path, *, cutoff: float) -> list[Path]:
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue  # may belong to a write in progress
            Path(entry.path).unlink()
        except FileNotFoundError:
            continue
        removed.append(Path(entry.path))
    if removed:
        fsync_directory(directory)
    return removed


def probe_writable(directory: Path) -> str | None:
    """Create, rename and delete a probe file in ``directory``; None, or why that failed."""
    shown = display_path(directory)
    try:
        ensure_directory(directory)
    except OSError as exc:
        return f"cannot create directory {shown}: {exc.strerror or exc}"
    probe = directory / temp_name("probe")
    renamed = directory / temp_name("probe")
    step = "create"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            step = "write"
            write_all(fd, b"ocrwatch write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        step = "rename"
        rename_no_replace(probe, renamed)
        step = "delete"
        renamed.unlink()
    except OSError as exc:
        unlink_quietly(probe)
        unlink_quietly(renamed)
        return f"cannot {step} a file in {shown}: {exc.strerror or exc}"
    return None


def display_path(path: Path) -> str:
    """``path`` as printable text: undecodable bytes shown as ``\\xNN``."""
    return _escaped(os.fspath(path))[0]


# --- names -------------------------------------------------------------------------------


def _choose_move_name(target: Path, info: os.stat_result) -> tuple[Path, bool]:
    """The first free candidate, or one that already is the source (a half-done link move)."""
    for candidate in candidates(target, max_name_bytes=NAME_MAX_BYTES):
        existing = _lstat_or_none(candidate)
        if existing is None:
            return candidate, False
        if same_inode(existing, info):
            return candidate, True
    raise AssertionError("unreachable: the candidates never run out")


def _choose_error_name(source: Path, target: Path, info: os.stat_result) -> tuple[Path, bool]:
    """Like ``_choose_move_name``, but the reason file's name must fit and be free or ours."""
    room = NAME_MAX_BYTES - len(REASON_SUFFIX.encode())
    for candidate in candidates(target, max_name_bytes=room):
        existing = _lstat_or_none(candidate)
        if existing is not None:
            if same_inode(existing, info):
                return candidate, True
            continue
        reason_path = reason_file_path(candidate)
        if not os.path.lexists(reason_path) or _reason_names_source(reason_path, source):
            return candidate, False
    raise AssertionError("unreachable: the candidates never run out")


def _reason_names_source(reason_path: Path, source: Path) -> bool:
    """True if ``reason_path`` was written by an earlier attempt to move ``source``."""
    try:
        with reason_path.open("rb") as file:
            recorded = json.loads(file.read(_REASON_READ_LIMIT_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return False  # unreadable or not ours: leave it alone and pick another name
    expected = _jsonable({"source_path": source})
    return isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in expected.items())


# --- JSON ------------------------------------------------------------------------------


def _escaped(text: str) -> tuple[str, bytes | None]:
    """``text`` as valid Unicode, plus its raw bytes if it was a surrogate-escaped name."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text, None
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8"), None
    return raw.decode("utf-8", "backslashreplace"), raw


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return _escaped(value)[0]
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = _escaped(str(key))[0]
            text = os.fspath(item) if isinstance(item, os.PathLike) else item
            if isinstance(text, str):
                shown, raw = _escaped(text)
                result[name] = shown
                if raw is not None:
                    result.setdefault(f"{name}_bytes", base64.b64encode(raw).decode("ascii"))
            else:
                result[name] = _jsonable(item)
        return result
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# --- stat --------------------------------------------------------------------------------


def _lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _lstat_movable(source: Path) -> os.stat_result:
    info = os.lstat(source)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "only files are moved", os.fspath(source))
    return info
