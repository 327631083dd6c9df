"""The files an install needs besides the code: the example config and the systemd units.

They ship inside the package (``ocrwatch/share/``, symlinks to the top-level
``config.example.yaml`` and ``systemd/`` in a git checkout, real files in the sdist and the
wheel), so ``pip install 'ocrwatch[engine]'`` alone is enough: ``ocrwatch init`` writes them
out, ``ocrwatch init --print NAME`` prints one.

Writing never replaces a file the user may have edited unless ``force`` is given, and checks
every target before it writes the first one, so a refused run leaves nothing half-written.
Each file is written to a temporary name and renamed into place, with the mode the umask
gives (the package's own file modes say nothing about the user's folder).
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from ocrwatch.errors import OcrwatchError

SHARE_DIRECTORY = "share"


class ExampleError(OcrwatchError):
    """An example file cannot be found or written; nothing was written."""


def shipped_files() -> dict[str, Traversable]:
    """Every shipped file by its relative POSIX name: ``systemd/ocrwatch.service``, …"""
    root = resources.files("ocrwatch").joinpath(SHARE_DIRECTORY)
    found: dict[str, Traversable] = {}
    pending: list[tuple[PurePosixPath, Traversable]] = [(PurePosixPath(), root)]
    while pending:
        prefix, folder = pending.pop()
        for entry in folder.iterdir():
            name = prefix / entry.name
            if entry.is_dir():
                pending.append((name, entry))
            elif entry.is_file() and not entry.name.startswith("."):
                found[str(name)] = entry
    if not found:
        raise ExampleError(f"this install of ocrwatch ships no example files under {root}")
    return dict(sorted(found.items()))


def read_example(name: str) -> str:
    """One shipped file's text, named by its relative path or, when unique, its file name."""
    files = shipped_files()
    if name in files:
        return files[name].read_text(encoding="utf-8")
    matches = [key for key in files if PurePosixPath(key).name == name]
    if len(matches) == 1:
        return files[matches[0]].read_text(encoding="utf-8")
    raise ExampleError(f"no shipped file named {name!r}; there are: {', '.join(files)}")


def write_examples(target: Path, *, force: bool = False) -> list[Path]:
    """Write every shipped file under ``target``; return the paths written, in order.

    Refuses, before writing anything, when a target exists (unless ``force``) or is not a
    regular file.
    """
    files = shipped_files()
    planned = [(target.joinpath(*PurePosixPath(name).parts), item) for name, item in files.items()]
    existing = [path for path, _ in planned if path.exists() or path.is_symlink()]
    not_files = [path for path in existing if path.is_symlink() or not path.is_file()]
    if not_files:
        raise ExampleError(
            "not replacing what is not a regular file: " + ", ".join(map(str, not_files))
        )
    if existing and not force:
        raise ExampleError(
            "these files exist and may hold your edits: "
            + ", ".join(map(str, existing))
            + " (use --force to replace them, or pick another folder)"
        )
    written: list[Path] = []
    for path, item in planned:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(path, item.read_bytes())
        written.append(path)
    return written


def _replace_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.ocrwatch-tmp")
    with temporary.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(path)
