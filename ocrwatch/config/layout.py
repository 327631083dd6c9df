"""Refuse folder layouts that would loop (re-ingest outputs) or collide (two owners of a folder).

Hazard guarded here rather than at run time: a folder the daemon writes to (error, done or
output folder, the state file) inside a watched inbox would make it re-ingest its own files.
Every path arrives absolute and resolved, so a symlinked alias cannot slip past these checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocrwatch.config.profiles import InboxConfig


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_layout(
    labelled: Sequence[tuple[str, InboxConfig]], *, state_path: Path, problems: list[str]
) -> None:
    """Refuse layouts that would loop (re-ingest outputs) or collide (two owners of a folder)."""
    for position, (label, inbox) in enumerate(labelled):
        for other_label, other in labelled[:position]:
            if inbox.name == other.name:
                problems.append(f"{label}.name: {inbox.name!r} is already used by {other_label}")
            if _is_within(inbox.path, other.path) or _is_within(other.path, inbox.path):
                problems.append(
                    f"{label}.path: {inbox.path} overlaps {other_label}.path {other.path}; "
                    "an inbox must not be inside another"
                )
        written = {"error_dir": inbox.error_dir, "done_dir": inbox.done_dir}
        written["output_dir"] = inbox.output_dir  # None (beside the source) is safe: {name}
        for key, folder in written.items():
            if folder is None:
                continue
            for other_label, other in labelled:
                if _is_within(folder, other.path):
                    problems.append(
                        f"{label}.{key}: {folder} is inside {other_label}.path {other.path}; "
                        "files put there would be picked up again"
                    )
                elif _is_within(other.path, folder):
                    problems.append(
                        f"{label}.{key}: {folder} contains {other_label}.path {other.path}; "
                        "keep the inbox out of folders ocrwatch writes to"
                    )
        if _is_within(state_path, inbox.path):
            problems.append(
                f"state.path: {state_path} is inside {label}.path {inbox.path}; "
                "keep the state file out of watched folders"
            )
