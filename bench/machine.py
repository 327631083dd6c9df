"""The machine a run happened on, and waiting for it to be quiet before a measurement.

The benchmark shares its machine: other processes' CPU would show up as the daemon's
latency. ``wait_until_quiet`` holds a run back until the 1-minute load average has stayed
below a threshold for a while (bounded: after ``max_wait_seconds`` it gives up and says so,
and the run records the load it had).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procstat import load_average
from bench.server import REPO_ROOT

_CHECK_SECONDS = 2.0


def describe() -> dict[str, Any]:
    """Cores, memory, CPU model, kernel, Python and the commit being measured."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "commit": commit,
    }


def wait_until_quiet(
    *, threshold: float, hold_seconds: float, max_wait_seconds: float, say: Any = print
) -> dict[str, Any]:
    """Wait until load1 < ``threshold`` for ``hold_seconds`` in a row, at most ``max_wait``."""
    started = time.monotonic()
    quiet_since: float | None = None
    last_said = 0.0
    while True:
        now = time.monotonic()
        load = load_average()
        if load < threshold:
            quiet_since = quiet_since if quiet_since is not None else now
            if now - quiet_since >= hold_seconds:
                return {"waited_seconds": round(now - started), "quiet": True, "load": load}
        else:
            quiet_since = None
        if now - started >= max_wait_seconds:
            return {"waited_seconds": round(now - started), "quiet": False, "load": load}
        if now - last_said >= 60:
            say(f"  waiting for a quiet machine: load {load:.2f} (want < {threshold})")
            last_said = now
        time.sleep(_CHECK_SECONDS)
