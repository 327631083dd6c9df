"""Where a file's time goes inside the daemon, from its log and the harness's timeline.

The daemon logs (at info) ``file_discovered``, ``file_settled``, ``task_submitted``,
``task_completed`` and ``sidecar_written`` with wall-clock timestamps; the harness knows the
wall-clock moment of each drop and each sidecar's arrival (``timeline.csv``). Lined up per
file they split the latency into stages:

- ``notice``: drop -> ``file_discovered`` (the watcher's event reaching the control loop);
- ``settle``: discovered -> settled, minus ``settle_seconds`` (the settle check's lateness);
- ``submit``: settled -> task id recorded (queueing for a slot in ``max_in_flight``, upload);
- ``poll``: task id -> completed seen, minus ``processing_seconds`` (polling lateness, and
  queueing at the server when it is full);
- ``write``: completed -> sidecar in place.

Each stage is given as p50 / p95 in seconds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.stats import percentile, rounded

STAGES = ("notice", "settle", "submit", "poll", "write")
_EVENTS = ("file_discovered", "file_settled", "task_submitted", "task_completed", "sidecar_written")


def stage_breakdown(
    log_path: Path, timeline_path: Path, *, settle_seconds: float, processing_seconds: float
) -> dict[str, dict[str, float | None]]:
    names_by_job: dict[int, str] = {}
    times: dict[str, dict[str, float]] = {}
    for event in _events(log_path):
        job_id, name = event.get("job_id"), event.get("event")
        if job_id is None or name not in _EVENTS:
            continue
        if name == "file_discovered":
            names_by_job[job_id] = Path(event["path"]).name
        file_name = names_by_job.get(job_id)
        if file_name is not None:
            times.setdefault(file_name, {}).setdefault(name, _timestamp(event))
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with timeline_path.open() as file:
        for row in csv.DictReader(file):
            t = times.get(row["name"], {})
            if len(t) < len(_EVENTS):
                continue
            stages["notice"].append(t["file_discovered"] - float(row["dropped_at"]))
            stages["settle"].append(t["file_settled"] - t["file_discovered"] - settle_seconds)
            stages["submit"].append(t["task_submitted"] - t["file_settled"])
            stages["poll"].append(t["task_completed"] - t["task_submitted"] - processing_seconds)
            stages["write"].append(t["sidecar_written"] - t["task_completed"])
    return {
        stage: {"p50": rounded(percentile(v, 0.5)), "p95": rounded(percentile(v, 0.95))}
        for stage, v in stages.items()
    }


def _events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as file:
        for raw in file:
            if raw.startswith(b"{"):
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def _timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()
