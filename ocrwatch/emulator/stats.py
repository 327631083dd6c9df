"""Count what the emulator saw and did, and hand out frozen snapshots of the counts.

Counters only ever describe requests that reached the emulator's logic: a submit is counted
when its task was created (a faulted or rejected POST is not a submit), so a client's own
count of duplicate submissions can be checked against ``submits``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """A snapshot of the counters since start (or the last ``reset_stats``).

    ``token_requests`` counts every request to the token endpoint and ``token_failures`` those
    refused (400 or lockout 429); ``submits`` maps a resource name to tasks created;
    ``fetches`` counts GETs of a task's result, ``status_probes`` GetTaskStatus calls;
    ``unauthorized`` counts 401 answers; ``faults`` maps a fault kind to injections;
    ``tasks_by_status`` is the current number of live tasks per status (not reset).
    """

    token_requests: int = 0
    token_failures: int = 0
    submits: dict[str, int] = field(default_factory=dict)
    fetches: int = 0
    status_probes: int = 0
    deletes: int = 0
    unauthorized: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    tasks_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total_submits(self) -> int:
        return sum(self.submits.values())


class Counters:
    """Thread-safe counters behind ``EmulatorStats``."""

    _SCALARS = (
        "token_requests",
        "token_failures",
        "fetches",
        "status_probes",
        "deletes",
        "unauthorized",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scalars: dict[str, int] = {}
        self._submits: dict[str, int] = {}
        self._faults: dict[str, int] = {}

    def add(self, name: str) -> None:
        if name not in self._SCALARS:
            raise KeyError(name)
        with self._lock:
            self._scalars[name] = self._scalars.get(name, 0) + 1

    def add_submit(self, resource: str) -> None:
        with self._lock:
            self._submits[resource] = self._submits.get(resource, 0) + 1

    def add_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def snapshot(self, *, tasks_by_status: Mapping[str, int]) -> EmulatorStats:
        with self._lock:
            return EmulatorStats(
                **{name: self._scalars.get(name, 0) for name in self._SCALARS},
                submits=dict(self._submits),
                faults=dict(self._faults),
                tasks_by_status=dict(tasks_by_status),
            )

    def reset(self) -> None:
        with self._lock:
            self._scalars.clear()
            self._submits.clear()
            self._faults.clear()
