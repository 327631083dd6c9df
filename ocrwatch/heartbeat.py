"""A heartbeat file the control loop refreshes, for health checks that cannot ask systemd.

A container's health command sees only the filesystem. "The process exists" says nothing
about a loop stuck on a lock or a hung mount, so the loop itself refreshes the file once per
tick, at most every ``INTERVAL_SECONDS``, and the health command checks its age
(``container/healthcheck``). Only the control thread calls ``beat``: a stuck loop, not a
live watcher or worker thread, lets it go stale.

Enabled by ``$OCRWATCH_HEARTBEAT_FILE``; a no-op without it. A failed write is logged once
per failure streak and never stops the daemon (the health check then reports it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

ENV_HEARTBEAT_FILE = "OCRWATCH_HEARTBEAT_FILE"
INTERVAL_SECONDS = 5.0  # the health command allows many of these (60 s by default)


class Heartbeat:
    """Writes the wall-clock time into ``path`` when ``beat`` is called, rate-limited."""

    def __init__(
        self,
        path: Path | None,
        *,
        interval_seconds: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._interval_seconds = interval_seconds
        self._clock = clock
        self._next_at = float("-inf")
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Heartbeat:
        value = (os.environ if environ is None else environ).get(ENV_HEARTBEAT_FILE, "")
        return cls(Path(value) if value else None)

    def beat(self) -> None:
        if self.path is None or self._clock() < self._next_at:
            return
        self._next_at = self._clock() + self._interval_seconds
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            # Replaced whole, so a reader never sees a torn line; the mtime is what counts.
            temporary.write_text(f"{time.time():.3f}\n", encoding="ascii")
            temporary.replace(self.path)
        except OSError as error:
            if not self._failing:
                log.warning("heartbeat_write_failed", path=str(self.path), error=str(error))
            self._failing = True
        else:
            self._failing = False
