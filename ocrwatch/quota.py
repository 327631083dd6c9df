"""The account pause: while the service refuses calls for the plan or quota, files wait.

Pure, like the circuit breaker beside it: an immutable value, and callers pass ``now``.

A refusal (402, or 403 after a fresh token) says nothing about a file and nothing about the
service's health, so it feeds neither the file's attempts nor the breaker. Instead every
submission stops and the files stay queued in the inbox. Polls of tasks already submitted go
on (their results are paid for) until a poll is refused too; then polls are held as well.
Once per ``probe_seconds`` (or after the service's ``Retry-After``, if longer, up to an hour)
one request is let through as the probe: a submission, or a poll when polls are held. While
everything is refused that costs one refused call per probe interval, however long the
backlog. A reload or a one-shot run probes at once (``probe_now``): a person asked.

A 403 need not be the account's: a gateway rule may refuse one file's content. A file still
refused 403 after two pauses since its first refusal ended with an accepted probe is blamed
itself (``blames_the_file``): the caller fails it, so one file cannot pause the backlog at
every probe for months. Two, not one: a quota that answers 403 could run out again just as
the file is retried after a top-up, and a quota must never send files to the error folder.
A 402 is always the account's.

The pause ends only when the probe is accepted, never on a late answer to a request sent
before the refusal: requests in flight when the quota ran out come back in any order, and a
stale success must not release the whole backlog into a wall of refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ocrwatch.model import AccountPause

# The longest a Retry-After may hold the probe back. A refused call costs nothing, while a
# quota's Retry-After may name its renewal date: a top-up meanwhile must be seen within the
# hour (``systemctl reload`` or ``ocrwatch once`` probe at once).
QUOTA_RETRY_AFTER_CAP_SECONDS = 3600.0
# Pauses ended by an accepted probe since a file's first 403, before a 403 is the file's.
BLAME_AFTER_RESUMPTIONS = 2


@dataclass(frozen=True, slots=True)
class QuotaPause:
    """Whether submissions and polls may go, given what the account's refusals said."""

    probe_seconds: float
    record: AccountPause | None = None  # None: not paused
    polls_held: bool = False  # a poll was refused too: polls wait for the probe as well
    probe_key: int | None = None  # the job whose request is the probe in flight
    resumptions: int = 0  # pauses ended by an accepted probe
    # Job -> ``resumptions`` at its first 403 refusal (until it is accepted or forgotten).
    refused_403: Mapping[int, int] = field(default_factory=dict)

    @property
    def is_paused(self) -> bool:
        return self.record is not None

    def allows_submit(self, now: float) -> bool:
        return self.record is None or self._probe_may_go(now)

    def allows_poll(self, now: float) -> bool:
        return not self.polls_held or self._probe_may_go(now)

    def _probe_may_go(self, now: float) -> bool:
        return self.record is not None and now >= self.record.probe_at and self.probe_key is None

    def probe_now(self, now: float) -> QuotaPause:
        """Let the next probe go at ``now`` (a one-shot run asked by hand is worth one call)."""
        if self.record is None or self.record.probe_at <= now:
            return self
        return replace(self, record=replace(self.record, probe_at=now))

    def on_submit(self, key: int) -> QuotaPause:
        """A submission is sent; while paused it is the probe."""
        return self if self.record is None else replace(self, probe_key=key)

    def on_poll(self, key: int) -> QuotaPause:
        """A poll is sent; while polls are held it is the probe."""
        return replace(self, probe_key=key) if self.polls_held else self

    def blames_the_file(self, key: int, http_status: int | None) -> bool:
        """A 403 for job ``key``, first refused 403 before two pauses ended: the file's."""
        first = self.refused_403.get(key)
        if http_status != 403 or first is None:
            return False
        return self.resumptions - first >= BLAME_AFTER_RESUMPTIONS

    def forget(self, key: int) -> QuotaPause:
        """Job ``key`` is finished or failed: no refusal of it to remember."""
        if key not in self.refused_403:
            return self
        return replace(self, refused_403={k: v for k, v in self.refused_403.items() if k != key})

    def on_accepted(self, key: int) -> QuotaPause:
        """The service accepted the request of job ``key``: the probe's acceptance ends it."""
        pause = self.forget(key)
        if self.record is None or key != self.probe_key:
            return pause
        return QuotaPause(
            self.probe_seconds, resumptions=self.resumptions + 1, refused_403=pause.refused_403
        )

    def on_refused(
        self,
        now: float,
        key: int,
        *,
        reason: str,
        http_status: int | None,
        is_poll: bool,
        retry_after_seconds: float | None = None,
    ) -> QuotaPause:
        """The account refused the request of job ``key``: pause, or pause longer."""
        retry_after = min(retry_after_seconds or 0.0, QUOTA_RETRY_AFTER_CAP_SECONDS)
        wait = max(self.probe_seconds, retry_after)
        since = self.record.since if self.record is not None else now
        record = AccountPause(
            reason=reason, http_status=http_status, since=since, probe_at=now + wait
        )
        refused_403 = self.refused_403
        if http_status == 403:
            refused_403 = {**refused_403, key: refused_403.get(key, self.resumptions)}
        return replace(
            self.on_finished(key),
            record=record,
            polls_held=self.polls_held or is_poll,
            refused_403=refused_403,
        )

    def on_finished(self, key: int) -> QuotaPause:
        """The request of job ``key`` ended (whatever its answer): its probe slot is free."""
        return replace(self, probe_key=None) if key == self.probe_key else self
