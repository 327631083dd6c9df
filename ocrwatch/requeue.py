"""Move files from error folders back to their inbox (``ocrwatch retry``).

Each file in an error folder has a ``<name>.error.json`` beside it naming where it came from.
Retrying moves the file back to that place (never overwriting: a name that is taken gets a
suffix) and removes the reason file; the daemon then sees it as a new file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ocrwatch import outputs, policy
from ocrwatch.config import Config, InboxConfig
from ocrwatch.outputs import REASON_SUFFIX


@dataclass(frozen=True, slots=True)
class Requeued:
    source: Path  # where it was in the error folder
    target: Path | None  # where it went back to; None if it could not
    problem: str | None = None


def failed_files(config: Config) -> Iterator[tuple[InboxConfig, Path]]:
    """Every file waiting in an error folder, with the inbox it belongs to."""
    for inbox in config.inboxes:
        if not inbox.error_dir.is_dir():
            continue
        for reason in sorted(inbox.error_dir.rglob(f"*{REASON_SUFFIX}")):
            yield inbox, reason.with_name(reason.name[: -len(REASON_SUFFIX)])


def requeue(config: Config, paths: Sequence[Path] | None) -> list[Requeued]:
    """Move the given failed files (or all, when ``paths`` is None) back to their inboxes."""
    wanted = None if paths is None else {_normalise(p) for p in paths}
    done: list[Requeued] = []
    for inbox, path in failed_files(config):
        if wanted is not None and path.absolute() not in wanted:
            continue
        done.append(_requeue_one(inbox, path))
    if wanted is not None:
        found = {r.source.absolute() for r in done}
        done.extend(
            Requeued(source=p, target=None, problem="not a file in an error folder")
            for p in sorted(wanted - found)
        )
    return done


def _normalise(path: Path) -> Path:
    path = path.absolute()
    if path.name.endswith(REASON_SUFFIX):
        path = path.with_name(path.name[: -len(REASON_SUFFIX)])
    return path


def _requeue_one(inbox: InboxConfig, path: Path) -> Requeued:
    reason_file = path.with_name(path.name + REASON_SUFFIX)
    try:
        reason = json.loads(reason_file.read_text(encoding="utf-8"))
        original = _source_path(reason)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        original = inbox.path / path.relative_to(inbox.error_dir)
    if not policy.is_within(original, inbox.path):
        original = inbox.path / path.name  # never write outside the inbox, whatever the file says
    if not path.exists() and not path.is_symlink():
        reason_file.unlink(missing_ok=True)
        return Requeued(source=path, target=None, problem="the file is gone; reason removed")
    try:
        final = outputs.move_file(path, original)
    except OSError as exc:
        return Requeued(source=path, target=None, problem=str(exc))
    outputs.delete_file(reason_file)
    return Requeued(source=path, target=final)


def _source_path(reason: dict[str, object]) -> Path:
    """Where the file came from; an undecodable name is restored from its exact bytes."""
    raw = reason.get("source_path_bytes")
    if isinstance(raw, str):
        return Path(os.fsdecode(base64.b64decode(raw, validate=True)))
    return Path(str(reason["source_path"]))
