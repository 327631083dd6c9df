"""The settling decision for files that stopped changing but are still incomplete (B.4).

A writer that pauses between pages is waited for; a file that has been quiet for
``incomplete_after_seconds`` and is still incomplete is broken, not slow, and fails as
``incomplete`` long before ``max_settle_seconds``.
"""

from __future__ import annotations

import pytest

from ocrwatch.settling import SettleState, SettleVerdict, settle_verdict

JPEG_CUT = "incomplete JPEG (no end marker)"


def _state(*, change: float = 0.0) -> SettleState:
    return SettleState(
        first_seen_at=0.0, last_change_at=change, size=10, mtime_ns=5, last_event_at=0.0
    )


@pytest.mark.parametrize(
    ("state", "now", "incomplete", "expected"),
    [
        # Quiet and incomplete: waited for, with the moment it will give up.
        (_state(), 5.0, JPEG_CUT, SettleVerdict("wait", 10.0, JPEG_CUT, fails_at=300.0)),
        (_state(), 298.0, JPEG_CUT, SettleVerdict("wait", 300.0, JPEG_CUT, fails_at=300.0)),
        # Quiet for the bound and still incomplete: broken, not slow.
        (_state(), 300.0, JPEG_CUT,
         SettleVerdict("incomplete", None, f"{JPEG_CUT}; unchanged for 300 s")),
        (_state(), 301.5, "empty file",
         SettleVerdict("incomplete", None, "empty file; unchanged for 300 s")),
        # The bound counts from the last change: a writer that paused and went on is waited for.
        (_state(change=250.0), 400.0, JPEG_CUT,
         SettleVerdict("wait", 405.0, JPEG_CUT, fails_at=550.0)),
        # Complete files settle as before.
        (_state(), 400.0, None, SettleVerdict("settled", None, "unchanged for 400.0 s")),
        # Still changing near the final deadline: max_settle_seconds answers.
        (_state(change=3599.0), 3600.0, None,
         SettleVerdict("never_settled", None, "still growing after 3600 s")),
    ],
)  # fmt: skip
def test_a_quiet_incomplete_file_fails_after_the_bound(
    state: SettleState, now: float, incomplete: str | None, expected: SettleVerdict
) -> None:
    verdict = settle_verdict(
        state,
        now=now,
        settle_seconds=5.0,
        max_settle_seconds=3600.0,
        incomplete_after_seconds=300.0,
        incomplete_reason=incomplete,
    )
    assert verdict == expected


def test_max_settle_still_bounds_a_file_when_it_is_the_shorter_wait() -> None:
    verdict = settle_verdict(
        _state(),
        now=100.0,
        settle_seconds=5.0,
        max_settle_seconds=100.0,
        incomplete_after_seconds=300.0,
        incomplete_reason=JPEG_CUT,
    )
    assert verdict == SettleVerdict("never_settled", None, f"{JPEG_CUT} after 100 s")
    waiting = settle_verdict(
        _state(),
        now=98.0,
        settle_seconds=5.0,
        max_settle_seconds=100.0,
        incomplete_after_seconds=300.0,
        incomplete_reason=JPEG_CUT,
    )
    assert waiting == SettleVerdict("wait", 100.0, JPEG_CUT, fails_at=100.0)
