"""The progress of ``ocrwatch once``: a bar redrawn in place on a terminal, plain lines otherwise.

Pure: ``ProgressView`` turns counts into the text to write (or None when nothing needs
writing) and the caller writes it. On a terminal the bar is redrawn with a carriage return
and an erase-to-end-of-line, at most every ``min_interval_seconds``; elsewhere (a pipe, a
log file, the journal) a plain line is written when the counts change, at most every
``line_interval_seconds``, so a large backlog does not flood the log. ``finish`` always
gives the final state, ending the terminal's bar line.

A log line written while the bar is on screen would be glued to its end: the writer first
writes ``clear()`` (erasing the bar), then the line, then ``redraw()`` (the bar again, below).
"""

from __future__ import annotations

from dataclasses import dataclass

BAR_WIDTH = 20
_ERASE_TO_END = "\x1b[K"


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: finished this run, still to do, and in flight at the service."""

    done: int
    failed: int
    active: int
    in_flight: int
    # A file held back because it looks incomplete, and why (None: nothing is held back).
    waiting_for: str | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def total(self) -> int:
        return self.finished + self.active


def describe(progress: Progress) -> str:
    """``13/40 files: 12 done, 1 failed, 3 in flight`` (``; waiting for NAME: WHY``)."""
    text = (
        f"{progress.finished}/{progress.total} files: {progress.done} done, "
        f"{progress.failed} failed, {progress.in_flight} in flight"
    )
    if progress.waiting_for is not None:
        text += f"; waiting for {progress.waiting_for}"
    return text


def bar(progress: Progress, *, width: int = BAR_WIDTH) -> str:
    """``[#####---------------]``: the finished share of the files, rounded down."""
    filled = width if progress.total == 0 else width * progress.finished // progress.total
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class ProgressView:
    """Decides what to write for each progress report; the caller writes it."""

    def __init__(
        self,
        *,
        is_tty: bool,
        min_interval_seconds: float = 0.1,
        line_interval_seconds: float = 1.0,
    ) -> None:
        self._is_tty = is_tty
        self._interval = min_interval_seconds if is_tty else line_interval_seconds
        self._last: Progress | None = None
        self._last_at: float | None = None
        self._bar: str = ""  # the bar on screen now (terminal only), "" when none

    def update(self, progress: Progress, *, now: float) -> str | None:
        """The text to write now (None: unchanged, or too soon after the last)."""
        if progress == self._last:
            return None
        if self._last_at is not None and now - self._last_at < self._interval:
            return None
        self._last, self._last_at = progress, now
        text = self._render(progress)
        if self._is_tty:
            self._bar = text
        return text

    def finish(self, progress: Progress) -> str:
        """The final state; on a terminal it also ends the bar's line."""
        if progress == self._last and not self._is_tty:
            return ""
        text = self._render(progress)
        self._last, self._bar = progress, ""
        return text + "\n" if self._is_tty else text

    def clear(self) -> str:
        """What erases the bar before another line is written ("" when no bar is shown)."""
        return "\r" + _ERASE_TO_END if self._bar else ""

    def redraw(self) -> str:
        """The bar again, after another line was written below where it was."""
        return self._bar

    def _render(self, progress: Progress) -> str:
        if self._is_tty:
            return f"\r{bar(progress)} {describe(progress)}{_ERASE_TO_END}"
        return f"progress: {describe(progress)}\n"
