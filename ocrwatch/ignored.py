"""Which ignored files to log: each path once, at most ``burst`` lines per window, then a count.

Pure (no I/O, the caller passes ``now`` and logs what it is told). A folder of thousands of
ignored files would otherwise flood the journal at every rescan; a user who wonders why a
file is never picked up still finds its ``file_ignored`` line with the rule that ignored it.
The memory of logged paths is bounded (oldest forgotten first), so a months-long daemon does
not grow with every name it ever ignored; a forgotten path may be logged once more.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_BURST = 20
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class IgnoreNotice:
    """What to log now: ``log`` this path's line, and ``suppressed`` lines held back before."""

    log: bool
    suppressed: int = 0


class IgnoredFiles:
    """Remembers the ignored paths already logged and rate-limits new ones."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        remembered: int = DEFAULT_REMEMBERED,
    ) -> None:
        self._burst = burst
        self._window_seconds = window_seconds
        self._remembered = remembered
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._window_start: float | None = None
        self._logged_in_window = 0
        self._suppressed = 0

    def note(self, path: str, *, now: float) -> IgnoreNotice:
        """Record that ``path`` was ignored; say whether to log it, and what was held back.

        The count held back in a window is handed out by the first call after the window
        ends; the periodic rescan meets every ignored file again, so one always comes.
        """
        suppressed = 0
        if self._window_start is None or now - self._window_start >= self._window_seconds:
            suppressed, self._suppressed = self._suppressed, 0
            self._window_start, self._logged_in_window = now, 0
        if path in self._seen:
            self._seen.move_to_end(path)
            return IgnoreNotice(log=False, suppressed=suppressed)
        self._seen[path] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        if self._logged_in_window >= self._burst:
            self._suppressed += 1
            return IgnoreNotice(log=False, suppressed=suppressed)
        self._logged_in_window += 1
        return IgnoreNotice(log=True, suppressed=suppressed)
