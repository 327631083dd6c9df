"""Record when files appear in a folder, from inotify, with a monotonic timestamp per name.

The harness measures drop-to-sidecar latency, so the moment a sidecar lands must be seen
without scanning a folder of 10,000 files many times a second. A reader thread blocks on the
inotify descriptor and stamps each ``IN_MOVED_TO`` / ``IN_CLOSE_WRITE`` name with
``time.monotonic()`` the moment the kernel hands it over (the daemon renames its sidecars into
place; the baseline client writes them directly).

Hazards: the kernel drops events when its queue (``max_queued_events``) overflows; the reader
then rescans the folder and stamps what it finds with the rescan time, and counts the
overflow, so a result that depended on it says so. Only the names the caller registers are
kept, so the reader's memory is bounded by the workload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import threading
import time
from collections.abc import Iterable
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_READ_BYTES = 1 << 16
_WAKE_SECONDS = 0.2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class ArrivalWatch:
    """Timestamps of expected names appearing in ``folder`` (a context manager)."""

    def __init__(self, folder: Path, *, mask: int = IN_MOVED_TO | IN_CLOSE_WRITE) -> None:
        self.folder = folder
        self._mask = mask
        self._lock = threading.Lock()
        self._expected: set[str] = set()
        self._arrivals: dict[str, float] = {}
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.overflows = 0
        libc = _libc()
        self._fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        wd = libc.inotify_add_watch(self._fd, os.fsencode(folder), self._mask)
        if wd < 0:
            code = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(code, f"inotify_add_watch {folder} failed")
        self._thread = threading.Thread(target=self._read_loop, name="arrivals", daemon=True)

    def __enter__(self) -> ArrivalWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def expect(self, names: Iterable[str]) -> None:
        """Names whose arrival to record; others are ignored."""
        with self._lock:
            self._expected.update(names)

    def arrivals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._arrivals)

    def count(self) -> int:
        with self._lock:
            return len(self._arrivals)

    def wait_for_count(self, count: int, *, deadline: float) -> bool:
        """Block until ``count`` expected names arrived or ``deadline`` (monotonic) passed."""
        with self._changed:
            while len(self._arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
            return True

    def _record(self, name: str, at: float) -> None:
        if name in self._expected and name not in self._arrivals:
            self._arrivals[name] = at
            self._changed.notify_all()

    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(_WAKE_SECONDS * 1000):
                continue
            try:
                data = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            at = time.monotonic()
            overflowed = False
            with self._lock:
                offset = 0
                while offset + _EVENT_HEADER.size <= len(data):
                    _wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
                    offset += _EVENT_HEADER.size
                    raw = data[offset : offset + length].split(b"\0", 1)[0]
                    offset += length
                    if mask & IN_Q_OVERFLOW:
                        overflowed = True
                    elif raw:
                        self._record(os.fsdecode(raw), at)
            if overflowed:
                self._rescan()

    def _rescan(self) -> None:
        self.overflows += 1
        at = time.monotonic()
        names = [entry.name for entry in os.scandir(self.folder)]
        with self._lock:
            for name in names:
                self._record(name, at)
