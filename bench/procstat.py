"""Read a process's CPU time and memory from ``/proc``, once or sampled on a thread.

CPU seconds are ``utime + stime`` of ``/proc/<pid>/stat`` (the process's own threads, not its
children) divided by the clock tick. ``VmRSS`` is the resident set now, ``VmHWM`` its peak
since the process started: the peak is exact even between samples, so a short spike is never
missed. The machine's 1-minute load average is sampled alongside, for the record.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at a process: monotonic time, CPU seconds, RSS and peak RSS (KiB), load."""

    at: float
    cpu_seconds: float
    rss_kib: int
    hwm_kib: int
    load1: float


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in KiB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (KeyError, IndexError, ValueError):
        return None  # a zombie has no memory lines


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def sample(pid: int) -> Sample | None:
    cpu = cpu_seconds(pid)
    memory = memory_kib(pid)
    if cpu is None or memory is None:
        return None
    return Sample(time.monotonic(), cpu, memory[0], memory[1], load_average())


class Sampler:
    """Samples ``pid`` every ``interval_seconds`` on a daemon thread until stopped."""

    def __init__(self, pid: int, *, interval_seconds: float = 0.5) -> None:
        self.pid = pid
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{pid}", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def _loop(self) -> None:
        while True:
            taken = sample(self.pid)
            if taken is not None:
                with self._lock:
                    self._samples.append(taken)
            if self._stop.wait(self._interval):
                return
