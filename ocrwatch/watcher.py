"""Watch the inbox folders with watchdog and hand every path that may be new to a sink.

One observer per inbox, so one dead, removed or unmounted inbox never blinds the others.
Each inbox is watched with native events or by polling, as resolved beforehand by
``policy.choose_watch_mode``. An event is only a hint: the service settles every path it
is given, and the same path may be reported many times (create, close, rescan).

Hazards, and what covers them:

- watchdog calls handlers on its dispatcher thread while holding the observer's lock, so
  the sink must be cheap, thread-safe and must never block (``queue.put`` on an unbounded
  queue). A sink that raises kills that observer's thread; ``check`` restarts it.
- Recursive inotify silently leaves out a subfolder it cannot watch (the watch limit is
  reached, the folder vanished while being added). The service's periodic ``scan`` is the
  net under that, and under events lost to an inotify queue overflow.
- Symlinks are never followed: not by ``scan``, not by inotify (which reports a link as a
  link), and not by the poller, which is given ``lstat``; a folder reported by an event is
  scanned only if it is not a symlink. Whatever a link points to stays untouched.
- An inbox removed, replaced or unmounted leaves a watch on nothing. ``check`` compares the
  root's (device, inode) and the watch threads' health, and restarts the watch (then scans
  the root, since events that happened meanwhile are lost) once the root is back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import InotifyFD
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.observers.polling import PollingObserverVFS

from ocrwatch import policy
from ocrwatch.model import WatchMode

Sink = Callable[[str, Path, bool], None]  # (inbox name, path, is_event), from any thread

_MOUNTINFO = Path("/proc/self/mountinfo")
_JOIN_SECONDS = 30.0
# Close-after-write is the readiness signal; created is a hint; moves bring finished files.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileClosedEvent, FileMovedEvent, FileCreatedEvent, DirCreatedEvent, DirMovedEvent,
]  # fmt: skip
# Polling never sees a close, so a change of size or mtime is the signal there.
_POLLING_FILTER: list[type[FileSystemEvent]] = [
    FileModifiedEvent, FileMovedEvent, FileCreatedEvent, DirCreatedEvent, DirMovedEvent,
]  # fmt: skip
# watchdog holds every IN_MOVED_FROM for ``delay`` (0.5 s) to pair it with its IN_MOVED_TO,
# and its reader sleeps the whole delay out even once the pair has arrived, holding up every
# event behind it. The kernel queues both halves of one rename(2) together, so a short window
# pairs them just as well; an unpaired half (a move out of the inbox, or in from outside) is
# reported as a delete or a create, which discovery handles the same. Without this, the
# daemon's own renames (sidecars beside the sources, sources moved out) would delay the
# notice of new files by up to half a second, in bursts.
MOVE_PAIRING_SECONDS = 0.02
_LIMIT_HINTS = {
    errno.ENOSPC: ("watch", "fs.inotify.max_user_watches=524288"),
    errno.EMFILE: ("instance", "fs.inotify.max_user_instances=512"),
}


def filesystem_type(path: Path, *, mountinfo: Path = _MOUNTINFO) -> str | None:
    """The type of the file system holding ``path`` (``ext4``, ``nfs4``, ``fuse.sshfs``...).

    Read from the longest mount point containing it in ``/proc/self/mountinfo``; the last
    of equal mount points wins, as a later mount hides an earlier one. None if unknown.
    """
    try:
        lines = mountinfo.read_bytes().splitlines()
    except OSError:
        return None
    target = PurePath(os.path.realpath(path))
    found: str | None = None
    found_depth = -1
    for line in lines:
        # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        before, separator, after = line.partition(b" - ")
        fields = before.split(b" ")
        if not separator or len(fields) < 5 or not after:
            continue
        mount_point = PurePath(os.fsdecode(_unescape(fields[4])))
        depth = len(mount_point.parts)
        if depth >= found_depth and policy.is_within(target, mount_point):
            found, found_depth = os.fsdecode(_unescape(after.split(b" ")[0])), depth
    return found


def _unescape(field: bytes) -> bytes:
    """Undo mountinfo's octal escapes (``\\040`` for a space, ``\\134`` for a backslash)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8) & 0xFF]), field)


def scan(root: Path, *, recursive: bool) -> Iterator[Path]:
    """Every entry under ``root`` that is not a folder: files, but also symlinks and FIFOs.

    Symlinks are never followed, not even to folders; folders with an ignored name
    (hidden, ``@eaDir``...) are not entered. Entries that vanish and subfolders that cannot
    be read are skipped; a root that cannot be read raises ``OSError``, so a missing share
    is never mistaken for an empty one. Names that are not UTF-8 come surrogate-escaped.
    """
    top = os.fspath(root)
    pending = [top]
    while pending:
        folder = pending.pop()
        subfolders: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        is_folder = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue  # vanished between readdir and stat
                    if not is_folder:
                        yield Path(entry.path)
                    elif recursive and policy.builtin_ignore(entry.name) is None:
                        subfolders.append(entry.path)
        except OSError:
            if folder is top:
                raise
            continue  # a subfolder that vanished or cannot be read
        pending.extend(sorted(subfolders, reverse=True))


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """One inbox to watch; ``mode`` is already resolved to events or polling."""

    name: str
    root: Path
    recursive: bool
    mode: WatchMode
    polling_interval_seconds: float

    def __post_init__(self) -> None:
        if self.mode is WatchMode.AUTO:
            raise ValueError("resolve watch mode 'auto' with policy.choose_watch_mode first")


class _InboxHandler(FileSystemEventHandler):
    """Turns watchdog events into sink calls; runs on the observer's dispatcher thread."""

    def __init__(self, spec: WatchSpec, sink: Sink) -> None:
        self._spec = spec
        self._sink = sink

    def dispatch(self, event: FileSystemEvent) -> None:
        raw = event.dest_path if isinstance(event, FileSystemMovedEvent) else event.src_path
        if not raw:
            return
        path = Path(os.fsdecode(raw))
        if not event.is_directory:
            self._sink(self._spec.name, path, True)
            return
        # A folder moved in arrives whole: no event for its files (paperless-ngx #5881).
        # A symlink is not a folder of the inbox, whatever it points to: never scan through it.
        if (
            self._spec.recursive
            and policy.builtin_ignore(path.name) is None
            and not path.is_symlink()
        ):
            with contextlib.suppress(OSError):  # gone again already: nothing to report
                for found in scan(path, recursive=True):
                    self._sink(self._spec.name, found, True)


@dataclass(slots=True)
class _Running:
    observer: BaseObserver
    inotify: InotifyFD | None
    root_identity: tuple[int, int]

    def is_alive(self) -> bool:
        threads = [self.observer, *self.observer.emitters]
        if self.inotify is not None:
            threads.append(self.inotify)
        return all(thread.is_alive() for thread in threads)

    def stop(self) -> None:
        _halt(self.observer, self.inotify)


def _halt(observer: BaseObserver, inotify: InotifyFD | None) -> None:
    observer.stop()  # also stops the emitters, even if the observer never started
    if observer.ident is not None:
        observer.join(_JOIN_SECONDS)
    if inotify is not None:
        inotify.stop()
        inotify.join(_JOIN_SECONDS)
    stuck = [t.name for t in (observer, inotify) if t is not None and t.is_alive()]
    if stuck:
        raise RuntimeError(f"watch threads {stuck} did not stop; is the sink blocking?")


@dataclass(slots=True)
class _Inbox:
    spec: WatchSpec
    handler: _InboxHandler
    running: _Running | None = None
    problem: str | None = None  # why it is not watched right now
    fallback: str | None = None  # why it is polled although events were asked for
    first_fstype: str | None = None


class Watchers:
    """The observers of all inboxes. Call every method from one thread (the service's)."""

    def __init__(self, inboxes: Sequence[WatchSpec], sink: Sink) -> None:
        self._sink = sink
        self._inboxes = [_Inbox(spec, _InboxHandler(spec, sink)) for spec in inboxes]

    def start(self) -> None:
        """Start watching every inbox that exists; the others are retried by ``check``."""
        # watchdog's shared inotify instance warns when a restarted watch reuses a callback
        # id (ids are recycled object ids) and overwrites the stale one, which is right.
        warnings.filterwarnings(
            "ignore", message="Callback with id", category=RuntimeWarning, module="watchdog"
        )
        for inbox in self._inboxes:
            if inbox.running is None:
                self._start(inbox)

    def stop(self) -> None:
        """Stop and join every observer thread."""
        errors = []
        for inbox in self._inboxes:
            if inbox.running is not None:
                running, inbox.running = inbox.running, None
                try:
                    running.stop()
                except RuntimeError as exc:
                    errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))

    def check(self) -> list[str]:
        """Restart dead or orphaned watches; describe every inbox not watched as asked.

        A watch restarted here is followed by a scan of its root, reported to the sink,
        because the events of the time it was down are lost.
        """
        problems: list[str] = []
        for inbox in self._inboxes:
            running = inbox.running
            if running is not None and not (running.is_alive() and self._root_is_same(inbox)):
                inbox.running = None
                running.stop()
            if inbox.running is None and self._start(inbox):
                if running is not None:
                    problems.append(
                        f"inbox {inbox.spec.name}: the watch on {inbox.spec.root} had stopped "
                        "or its folder was replaced; restarted it"
                    )
                self._report_all(inbox)
            problems += [p for p in (inbox.problem, inbox.fallback) if p]
            fstype = filesystem_type(inbox.spec.root) if inbox.running else None
            if inbox.first_fstype and fstype and fstype != inbox.first_fstype:
                problems.append(
                    f"inbox {inbox.spec.name}: {inbox.spec.root} is on {fstype} now, not "
                    f"{inbox.first_fstype} as before: is the share unmounted?"
                )
        return problems

    # ---- internals ----

    def _root_is_same(self, inbox: _Inbox) -> bool:
        assert inbox.running is not None
        try:
            st = inbox.spec.root.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == inbox.running.root_identity

    def _report_all(self, inbox: _Inbox) -> None:
        with contextlib.suppress(OSError):  # gone again: the next check reports it
            for path in scan(inbox.spec.root, recursive=inbox.spec.recursive):
                self._sink(inbox.spec.name, path, False)

    def _start(self, inbox: _Inbox) -> bool:
        """Start the inbox's observer; on failure, set ``inbox.problem`` and return False."""
        spec = inbox.spec
        mode = WatchMode.POLLING if inbox.fallback else spec.mode
        try:
            st = spec.root.stat()
            if not stat.S_ISDIR(st.st_mode):
                inbox.problem = f"inbox {spec.name}: {spec.root} is not a folder"
                return False
            try:
                inbox.running = self._launch(spec, mode, (st.st_dev, st.st_ino), inbox.handler)
            except OSError as exc:
                if mode is not WatchMode.EVENTS or exc.errno not in _LIMIT_HINTS:
                    raise
                what, sysctl = _LIMIT_HINTS[exc.errno]
                inbox.fallback = (
                    f"inbox {spec.name}: the inotify {what} limit is reached; polling "
                    f"{spec.root} every {spec.polling_interval_seconds:g} s instead "
                    f"(raise it: sysctl {sysctl})"
                )
                inbox.running = self._launch(
                    spec, WatchMode.POLLING, (st.st_dev, st.st_ino), inbox.handler
                )
        except (FileNotFoundError, NotADirectoryError):
            inbox.problem = f"inbox {spec.name}: {spec.root} is missing; waiting for it to reappear"
            return False
        except OSError as exc:
            inbox.problem = (
                f"inbox {spec.name}: {spec.root} cannot be watched ({exc.strerror or exc}); "
                "trying again"
            )
            return False
        inbox.problem = None
        inbox.first_fstype = inbox.first_fstype or filesystem_type(spec.root)
        return True

    @staticmethod
    def _launch(
        spec: WatchSpec, mode: WatchMode, identity: tuple[int, int], handler: _InboxHandler
    ) -> _Running:
        inotify: InotifyFD | None = None
        if mode is WatchMode.POLLING:
            # lstat, not stat: a symlink to a folder is reported as a link, never walked into,
            # so a recursive poll cannot reach (and the daemon cannot move) files outside.
            observer: BaseObserver = PollingObserverVFS(
                os.lstat, os.scandir, polling_interval=spec.polling_interval_seconds
            )
            event_filter = _POLLING_FILTER
        else:
            InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS  # read by each new watch
            inotify = InotifyFD()  # an inotify instance of our own, to check its thread
            inotify.start()
            observer = BaseObserver(InotifyEmitter, inotify_fd=inotify)
            event_filter = _EVENT_FILTER
        try:
            observer.schedule(
                handler, os.fspath(spec.root), recursive=spec.recursive, event_filter=event_filter
            )
            observer.start()  # adds the watches (or takes the first snapshot) on this thread
        except BaseException:
            _halt(observer, inotify)
            raise
        return _Running(observer, inotify, identity)
