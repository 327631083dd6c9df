"""Pure settling decisions: has a file stopped changing long enough to be recognised.

Nothing here touches the file system: the caller stats the file (and probes its format)
and folds each observation into a ``SettleState`` with ``observe``; ``settle_verdict`` says
whether the file is settled, when to look again, that it stopped changing while still
incomplete (a broken file, not a slow writer), or that it never settled. Times are seconds
on the caller's clock. An event counts as a change even when size and mtime look the same,
and ``max_settle_seconds`` is counted from when the file was first seen, not from its last
change, so a file that never stops growing still gets a final answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class SettleState:
    """What has been seen of one file; times are seconds on the caller's clock."""

    first_seen_at: float
    last_change_at: float
    size: int
    mtime_ns: int
    last_event_at: float


def observe(
    previous: SettleState | None, *, size: int, mtime_ns: int, now: float, event: bool
) -> SettleState:
    """Fold one observation (a stat, perhaps triggered by an event) into the state."""
    if previous is None:
        return SettleState(now, now, size, mtime_ns, now)
    changed = event or size != previous.size or mtime_ns != previous.mtime_ns
    return SettleState(
        first_seen_at=previous.first_seen_at,
        last_change_at=now if changed else previous.last_change_at,
        size=size,
        mtime_ns=mtime_ns,
        last_event_at=now if event else previous.last_event_at,
    )


@dataclass(frozen=True, slots=True)
class SettleVerdict:
    kind: Literal["settled", "wait", "incomplete", "never_settled"]
    check_again_at: float | None  # for "wait"
    reason: str
    # For a "wait" on a quiet file that looks incomplete: when it will be given up on.
    fails_at: float | None = None


def settle_verdict(
    state: SettleState,
    *,
    now: float,
    settle_seconds: float,
    max_settle_seconds: float,
    incomplete_after_seconds: float | None = None,
    looks_complete: bool | None = None,
    incomplete_reason: str | None = None,
) -> SettleVerdict:
    """Settled once quiet for ``settle_seconds`` and not known to be incomplete.

    The format probe's answer for a quiet file is ``looks_complete`` (None: not probed) and
    ``incomplete_reason`` (why not; giving a reason alone also means incomplete). A quiet
    file that looks incomplete is waited for, because some scanners pause between pages,
    but only for ``incomplete_after_seconds`` of quiet: a file unchanged that long and still
    incomplete is broken, not slow ("incomplete"). ``max_settle_seconds`` after it was first
    seen bounds every wait ("never_settled").
    """
    if looks_complete is False or incomplete_reason is not None:
        incomplete_reason = incomplete_reason or "does not look complete"
    quiet_since = max(state.last_change_at, state.last_event_at)
    quiet_until = quiet_since + settle_seconds
    is_quiet = now >= quiet_until
    if is_quiet and incomplete_reason is None:
        return SettleVerdict("settled", None, f"unchanged for {now - quiet_since:.1f} s")
    deadline = state.first_seen_at + max_settle_seconds
    if is_quiet and incomplete_after_seconds is not None:
        broken_at = quiet_since + incomplete_after_seconds
        if now >= broken_at and broken_at <= deadline:
            return SettleVerdict(
                "incomplete",
                None,
                f"{incomplete_reason}; unchanged for {incomplete_after_seconds:g} s",
            )
        deadline = min(deadline, broken_at)
    if now >= deadline:
        why = "still growing" if not is_quiet else incomplete_reason
        return SettleVerdict("never_settled", None, f"{why} after {max_settle_seconds:g} s")
    if not is_quiet:
        return SettleVerdict("wait", min(quiet_until, deadline), "changed recently")
    return SettleVerdict(
        "wait", min(now + settle_seconds, deadline), str(incomplete_reason), fails_at=deadline
    )
