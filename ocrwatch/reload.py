"""Which inbox profile each job uses across config reloads, and what a reload may change.

A job keeps the profile (``InboxConfig``) it was discovered under until it is done, failed
or forgotten: a reload that changes an inbox's result types, output folder or hooks applies
to files found after it, never to a file whose task is already running. ``Profiles`` holds
the current config's inboxes plus, per job id, the older profile of each job that was
active when a reload changed its inbox. The stored ``profile_hash`` of a row names the
profile the job started with.

What a reload cannot change (it is kept, and a restart is asked for in the log): the
``service`` section (the client, its credentials and the worker pools are built at start),
``state.path`` (the open database), ``logging`` and ``metrics`` (set up once at start).

Pure: no I/O, no clock; the service calls it on its control thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ocrwatch.config import Config, InboxConfig
from ocrwatch.model import Job, JobState

# Jobs of a removed inbox in these states have cost nothing yet: they are dropped, not finished.
_UNPAID = (JobState.SETTLING, JobState.QUEUED)


@dataclass(frozen=True, slots=True)
class Swap:
    """What a reload did to the jobs that were active."""

    pinned: int  # jobs that keep an older profile
    orphaned: tuple[Job, ...]  # unpaid jobs of removed inboxes, for the caller to forget
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


class Profiles:
    """The current inboxes by name, and the older profile each pinned job keeps."""

    def __init__(self, inboxes: Iterable[InboxConfig]) -> None:
        self._current: dict[str, InboxConfig] = {inbox.name: inbox for inbox in inboxes}
        self._pinned: dict[int, InboxConfig] = {}

    @property
    def current(self) -> Mapping[str, InboxConfig]:
        return self._current

    def pinned_ids(self) -> list[int]:
        return list(self._pinned)

    def for_job(self, job: Job) -> InboxConfig | None:
        """The profile ``job`` runs under: the one it started with, else its inbox's current."""
        return self._pinned.get(job.id) or self._current.get(job.inbox)

    def names(self) -> list[str]:
        """Every inbox that still has work: the configured ones and those of pinned jobs."""
        names = dict.fromkeys(self._current)
        names.update(dict.fromkeys(p.name for p in self._pinned.values()))
        return list(names)

    def release(self, job_id: int) -> None:
        """The job is finished or forgotten: its older profile is no longer needed."""
        self._pinned.pop(job_id, None)

    def swap(self, inboxes: Sequence[InboxConfig], active: Iterable[Job]) -> Swap:
        """Make ``inboxes`` current; every job in ``active`` keeps the profile it runs under."""
        new = {inbox.name: inbox for inbox in inboxes}
        orphaned: list[Job] = []
        for job in active:
            profile = self.for_job(job)
            if profile is None or new.get(job.inbox) == profile:
                self._pinned.pop(job.id, None)  # the new profile is the one it started with
                continue
            if job.inbox not in new and job.state in _UNPAID and job.error_class is None:
                orphaned.append(job)
                continue
            self._pinned[job.id] = profile
        old = self._current
        self._current = new
        return Swap(
            pinned=len(self._pinned),
            orphaned=tuple(orphaned),
            added=tuple(n for n in new if n not in old),
            removed=tuple(n for n in old if n not in new),
            changed=tuple(n for n in new if n in old and new[n] != old[n]),
        )


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The sections that differ but only take effect after a restart."""
    changed = []
    if old.service != new.service:
        changed.append("service")
    if old.state_path != new.state_path:
        changed.append("state.path")
    if (old.log_level, old.log_format) != (new.log_level, new.log_format):
        changed.append("logging")
    if old.metrics != new.metrics:
        changed.append("metrics")
    return changed


def effective_config(old: Config, new: Config) -> Config:
    """``new`` with the sections that cannot change while running taken from ``old``."""
    return dataclasses.replace(
        new,
        service=old.service,
        state_path=old.state_path,
        log_level=old.log_level,
        log_format=old.log_format,
        metrics=old.metrics,
    )
