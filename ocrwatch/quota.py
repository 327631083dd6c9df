"""The account pause: while the service refuses calls for the plan or quota, files wait.

Pure, like the circuit breaker beside it: an immutable value, and callers pass ``now``.

A refusal (402, or 403 after a fresh token) says nothing about a file and nothing about the
service's health, so it feeds neither the file's attempts nor the breaker. Instead every
submission stops; the files stay queued in the inbox. Once per ``probe_seconds`` (or after the
service's ``Retry-After``, if longer) one submission is let through as the probe. Polls of tasks
already submitted are not held back (their results are paid for), but a refused poll waits for
the same probe time.

The pause lifts only on an answer to a request sent while it lasted (the probe, or a poll),
never on a late answer to one sent before the refusal: requests in flight when the quota ran
out come back in any order, and a stale success must not release the whole backlog into a
wall of refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ocrwatch.model import AccountPause


@dataclass(frozen=True, slots=True)
class QuotaPause:
    """Whether submissions may flow, given what the account's refusals said."""

    probe_seconds: float
    record: AccountPause | None = None  # None: not paused
    probe_key: int | None = None  # the submission sent to find out whether it is over
    sent_while_paused: frozenset[int] = field(default_factory=frozenset)  # polls, by job

    @property
    def is_paused(self) -> bool:
        return self.record is not None

    def allows_submit(self, now: float) -> bool:
        if self.record is None:
            return True
        return now >= self.record.probe_at and self.probe_key is None

    def on_submit(self, key: int) -> QuotaPause:
        """A submission is sent; while paused it is the probe."""
        return self if self.record is None else replace(self, probe_key=key)

    def on_poll(self, key: int) -> QuotaPause:
        """A poll is sent; while paused, its answer tells whether the account is back."""
        if self.record is None:
            return self
        return replace(self, sent_while_paused=self.sent_while_paused | {key})

    def on_accepted(self, key: int) -> QuotaPause:
        """The service accepted the request of job ``key``."""
        if self.record is None or (key != self.probe_key and key not in self.sent_while_paused):
            return self.on_finished(key)
        return QuotaPause(self.probe_seconds)

    def on_refused(
        self,
        now: float,
        key: int,
        *,
        reason: str,
        http_status: int | None,
        retry_after_seconds: float | None = None,
    ) -> QuotaPause:
        """The account refused the request of job ``key``: pause, or pause longer."""
        wait = max(self.probe_seconds, retry_after_seconds or 0.0)
        since = self.record.since if self.record is not None else now
        record = AccountPause(
            reason=reason, http_status=http_status, since=since, probe_at=now + wait
        )
        return replace(self.on_finished(key), record=record)

    def on_finished(self, key: int) -> QuotaPause:
        """The request of job ``key`` ended without a verdict on the account (or was applied)."""
        if key != self.probe_key and key not in self.sent_while_paused:
            return self
        return replace(
            self,
            probe_key=None if key == self.probe_key else self.probe_key,
            sent_while_paused=self.sent_while_paused - {key},
        )
