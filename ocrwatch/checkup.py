"""The doctor's local checks: folders, permissions, inotify limits, the state file, free disk.

Read-only apart from the permission probes, which create, rename and delete one hidden file
(``.probe.ocrwatch-*.tmp``, a name the daemon ignores) in each folder that exists and leave
nothing behind, even when a step fails. A folder that does not exist yet is never created;
its nearest existing parent is checked instead. The state database is not opened, so the
checks run safely beside a running daemon.
"""

from __future__ import annotations

import enum
import os
import pwd
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ocrwatch import outputs, policy
from ocrwatch.config import Config, InboxConfig
from ocrwatch.model import Disposition, WatchMode
from ocrwatch.watcher import filesystem_type

MIN_FREE_INODES = 1000
INOTIFY = Path("/proc/sys/fs/inotify")
_WATCHES_FIX = (
    "raise it: sysctl fs.inotify.max_user_watches=524288, and keep it in "
    "/etc/sysctl.d/90-ocrwatch.conf; or set watch: polling for the largest inbox"
)
_INSTANCES_FIX = (
    "raise it: sysctl fs.inotify.max_user_instances=512, and keep it in "
    "/etc/sysctl.d/90-ocrwatch.conf"
)


class Level(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Finding:
    subject: str  # "inbox scans", "service", "state", "config"
    level: Level
    text: str
    fix: str | None = None


def local_findings(
    config: Config, *, min_free_bytes: int, inotify: Path = INOTIFY
) -> list[Finding]:
    """Inboxes and their folders, the inotify limits, the state file and the disks."""
    findings = [Finding("config", Level.WARNING, w) for w in config.warnings]
    for inbox in config.inboxes:
        findings += _inbox_findings(inbox)
    findings += _inotify_findings(config.inboxes, inotify)
    findings += _state_findings(config.state_path)
    findings += _disk_findings(config, min_free_bytes=min_free_bytes)
    return findings


# ---------------------------------------------------------------------- inboxes


def _inbox_findings(inbox: InboxConfig) -> Iterator[Finding]:
    subject = f"inbox {inbox.name}"
    fstype = filesystem_type(inbox.path)
    mode, why = policy.choose_watch_mode(inbox.watch, fstype)
    if inbox.watch is WatchMode.EVENTS and fstype and policy.is_network_filesystem(fstype):
        yield Finding(
            subject,
            Level.PROBLEM,
            f"watch: events on {fstype}: changes made by other machines never arrive",
            "set watch: auto (or polling) for this inbox",
        )
    else:
        yield Finding(subject, Level.OK, f"{fstype or 'unknown file system'}: {mode} ({why})")
    if not os.access(inbox.path, os.R_OK | os.X_OK):
        yield Finding(
            subject,
            Level.PROBLEM,
            f"cannot list {outputs.display_path(inbox.path)}",
            f"give the user running ocrwatch ({_user()}) read access to it",
        )
    for role, folder in _folders(inbox):
        yield _probe(subject, role, folder)
    yield from _atomic_move(subject, "error folder", inbox.path, inbox.error_dir)
    if inbox.done_dir is not None:
        yield from _atomic_move(subject, "done folder", inbox.path, inbox.done_dir)


def _folders(inbox: InboxConfig) -> Iterator[tuple[str, Path]]:
    yield "inbox", inbox.path
    if inbox.output_dir is not None:
        yield "output folder", inbox.output_dir
    yield "error folder", inbox.error_dir
    if inbox.on_success is Disposition.MOVE and inbox.done_dir is not None:
        yield "done folder", inbox.done_dir


def _probe(subject: str, role: str, folder: Path) -> Finding:
    shown = outputs.display_path(folder)
    if not folder.is_dir():
        parent = _existing_ancestor(folder)
        if not parent.is_dir():
            return Finding(
                subject,
                Level.PROBLEM,
                f"{role} {shown} cannot be created: {parent} is not a folder",
                f"point the {role} somewhere else, or move {parent} away",
            )
        if os.access(parent, os.W_OK | os.X_OK):
            return Finding(subject, Level.OK, f"{role} {shown}: will be created in {parent}")
        return Finding(
            subject,
            Level.PROBLEM,
            f"{role} {shown} does not exist and cannot be created in {parent}",
            f"mkdir -p {shown} && chown {_user()} {shown}",
        )
    problem = outputs.probe_writable(folder)
    if problem is None:
        return Finding(subject, Level.OK, f"{role} {shown}: create, rename and delete work")
    return Finding(
        subject,
        Level.PROBLEM,
        f"{role}: {problem}",
        f"give {_user()} write access: chown {_user()} {shown} (or setfacl -m u:{_user()}:rwx)",
    )


def _atomic_move(subject: str, role: str, inbox: Path, folder: Path) -> Iterator[Finding]:
    try:
        same = inbox.stat().st_dev == _existing_ancestor(folder).stat().st_dev
    except OSError:
        return
    if same:
        yield Finding(subject, Level.OK, f"moves to the {role} are atomic renames")
    else:
        yield Finding(
            subject,
            Level.WARNING,
            f"the {role} is on another file system: moves there are copies, not atomic renames",
            f"put the {role} on the same file system as the inbox",
        )


def _inotify_findings(inboxes: Iterable[InboxConfig], inotify: Path) -> Iterator[Finding]:
    evented = [
        inbox
        for inbox in inboxes
        if policy.choose_watch_mode(inbox.watch, filesystem_type(inbox.path))[0]
        is not WatchMode.POLLING
    ]
    if not evented:
        return
    watches = _read_int(inotify / "max_user_watches")
    instances = _read_int(inotify / "max_user_instances")
    folders = sum(_count_folders(inbox.path) if inbox.recursive else 1 for inbox in evented)
    if watches is None or instances is None:
        yield Finding("inotify", Level.SKIPPED, f"limits not readable under {inotify}")
        return
    if folders > watches:
        yield Finding(
            "inotify",
            Level.PROBLEM,
            f"{folders} folders to watch but max_user_watches is {watches}",
            _WATCHES_FIX,
        )
    elif folders > watches // 2:
        yield Finding(
            "inotify",
            Level.WARNING,
            f"{folders} folders to watch use most of max_user_watches ({watches}), which "
            "every program of this user shares",
            _WATCHES_FIX,
        )
    else:
        yield Finding(
            "inotify", Level.OK, f"{folders} folder(s) to watch; max_user_watches is {watches}"
        )
    if len(evented) > instances:
        yield Finding(
            "inotify",
            Level.PROBLEM,
            f"{len(evented)} inboxes need an inotify instance each; max_user_instances is "
            f"{instances}",
            _INSTANCES_FIX,
        )
    else:
        yield Finding(
            "inotify",
            Level.OK,
            f"{len(evented)} inotify instance(s) needed; max_user_instances is {instances}",
        )


def _count_folders(root: Path) -> int:
    """Folders inotify would watch under ``root`` (itself included); symlinks not followed."""
    count = 0
    pending = [os.fspath(root)]
    while pending:
        folder = pending.pop()
        count += 1
        try:
            with os.scandir(folder) as entries:
                pending += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return count


# ---------------------------------------------------------------------- state and disks


def _state_findings(state_path: Path) -> Iterator[Finding]:
    shown = outputs.display_path(state_path)
    folder = _existing_ancestor(state_path.parent)
    if state_path.exists():
        writable = os.access(state_path, os.R_OK | os.W_OK) and os.access(folder, os.W_OK)
        text = f"state file {shown} exists"
    else:
        writable = os.access(folder, os.W_OK | os.X_OK)
        text = f"state file {shown} will be created"
    if writable:
        yield Finding("state", Level.OK, text)
    else:
        yield Finding(
            "state",
            Level.PROBLEM,
            f"{text}, but {_user()} cannot write there",
            f"chown -R {_user()} {outputs.display_path(folder)} (or set state.path)",
        )


def _disk_findings(config: Config, *, min_free_bytes: int) -> Iterator[Finding]:
    places: dict[int, list[Path]] = {}
    folders = [config.state_path.parent]
    for inbox in config.inboxes:
        folders += [inbox.output_dir or inbox.path, inbox.error_dir]
        if inbox.done_dir is not None:
            folders.append(inbox.done_dir)
    for folder in folders:
        existing = _existing_ancestor(folder)
        try:
            places.setdefault(existing.stat().st_dev, []).append(existing)
        except OSError:
            continue
    for paths in places.values():
        shown = ", ".join(dict.fromkeys(outputs.display_path(p) for p in paths))
        try:
            usage = os.statvfs(paths[0])
        except OSError as exc:
            yield Finding("disk", Level.SKIPPED, f"{shown}: {exc.strerror or exc}")
            continue
        free = usage.f_bavail * usage.f_frsize
        if free < min_free_bytes:
            yield Finding(
                "disk",
                Level.PROBLEM,
                f"{_mib(free)} free for {shown}, below the threshold of {_mib(min_free_bytes)}",
                "free some space there, or move these folders to a larger file system",
            )
        elif usage.f_files and usage.f_favail < MIN_FREE_INODES:
            yield Finding(
                "disk",
                Level.PROBLEM,
                f"only {usage.f_favail} inodes free for {shown}",
                "delete old files there (sidecars and reason files use one inode each)",
            )
        else:
            yield Finding("disk", Level.OK, f"{_mib(free)} free for {shown}")


# ---------------------------------------------------------------------- helpers


def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return str(os.geteuid())
