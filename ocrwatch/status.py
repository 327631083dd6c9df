"""The report ``ocrwatch status`` prints: per inbox, jobs by state, the oldest waiting file,
the error folder, the files its rules ignore, the last errors, and whether the account's
plan or quota holds submissions.

Read-only: the state file is opened read-only (the daemon may be running) and the inboxes
are only listed. The ignored count is taken from the folder as it is now, by the same rules
the daemon applies, so it agrees with ``ocrwatch explain`` and the ``file_ignored`` log lines
(ocrwatch's own sidecars, temporaries and reason files are not counted).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ocrwatch import outputs, policy, probe
from ocrwatch.config import Config, InboxConfig
from ocrwatch.errors import OcrwatchError
from ocrwatch.model import AccountPause, Job, JobState
from ocrwatch.requeue import failed_files
from ocrwatch.store import Store
from ocrwatch.watcher import scan

LAST_ERRORS = 5


def status_report(config: Config, *, now: float) -> list[dict[str, Any]]:
    """One JSON-able entry per inbox; the state file must exist."""
    report: list[dict[str, Any]] = []
    in_error_folder = _error_folder_by_source(config)
    with Store.open(config.state_path, readonly=True) as store:
        pause = store.account_pause()
        for inbox in config.inboxes:
            # By name and folder: another config sharing this state file may name an inbox alike.
            counts = store.count_by_state(inbox=inbox.name, under=inbox.path)
            oldest = store.oldest_waiting(inbox=inbox.name, under=inbox.path)
            failures = store.recent_failures(inbox=inbox.name, limit=LAST_ERRORS, under=inbox.path)
            report.append(
                {
                    "inbox": inbox.name,
                    "path": str(inbox.path),
                    "counts": {state.value: counts.get(state, 0) for state in JobState},
                    "state_path": str(config.state_path),  # the same for every inbox
                    "oldest_waiting": None
                    if oldest is None
                    else {
                        "path": str(oldest.path),
                        "state": oldest.state.value,
                        "age_seconds": round(now - oldest.first_seen_at, 1),
                        "waiting_for": _waiting_for(oldest),
                    },
                    "in_error_folder": sum(1 for i, _ in failed_files(config) if i is inbox),
                    "ignored_now": ignored_count(inbox),
                    # The same for every inbox: the account's plan or quota holds them all.
                    "submissions_paused": None if pause is None else _pause_view(pause, now),
                    "last_errors": [
                        {
                            # Where the file is now: in the error folder, unless retried or
                            # removed since (then where it was).
                            "path": str(in_error_folder.get(job.path, job.path)),
                            "came_from": str(job.path),
                            "class": job.error_class.value if job.error_class else None,
                            "message": job.last_error,
                            "at": job.updated_at,
                        }
                        for job in failures
                    ],
                }
            )
    return report


def _waiting_for(job: Job) -> str | None:
    """Why a settling file waits, when it is because it looks incomplete (probed now)."""
    if job.state is not JobState.SETTLING:
        return None
    try:
        return probe.incompleteness(job.path, size=job.path.lstat().st_size)
    except (OSError, OcrwatchError):  # gone or unreadable now: the daemon decides
        return None


def _error_folder_by_source(config: Config) -> dict[Path, Path]:
    """Each file in an error folder, by the inbox path its reason file says it came from."""
    found: dict[Path, Path] = {}
    for _inbox, moved in failed_files(config):
        try:
            reason = json.loads(outputs.reason_file_path(moved).read_bytes())
        except (OSError, ValueError):
            continue
        source = reason.get("source_path") if isinstance(reason, dict) else None
        if isinstance(source, str):
            found[Path(source)] = moved
    return found


def ignored_count(inbox: InboxConfig) -> int | None:
    """Files in the inbox now that its rules ignore; None when the inbox cannot be listed."""
    inside = inbox.output_dir is None or policy.is_within(inbox.output_dir, inbox.path)
    try:
        return sum(
            1
            for path in scan(inbox.path, recursive=inbox.recursive)
            if policy.candidate_verdict(
                path.relative_to(inbox.path),
                include=inbox.include,
                exclude=inbox.exclude,
                output_template=inbox.output_template,
                outputs_inside_inbox=inside,
            ).is_notable
        )
    except OSError:  # a missing or unreadable inbox: `ocrwatch doctor` says why
        return None


def _pause_view(pause: AccountPause, now: float) -> dict[str, Any]:
    return {
        "reason": pause.reason,
        "http_status": pause.http_status,
        "since": datetime.fromtimestamp(pause.since, UTC).isoformat(timespec="seconds"),
        "paused_seconds": round(now - pause.since, 1),
        "next_probe_in_seconds": round(max(0.0, pause.probe_at - now), 1),
    }


def print_status(report: list[dict[str, Any]], out: TextIO) -> None:
    """The text form of ``status_report`` (after the state file line)."""
    pause = report[0]["submissions_paused"] if report else None
    if isinstance(pause, dict):
        print(
            f"SUBMISSIONS PAUSED since {pause['since']} ({pause['paused_seconds']} s): "
            f"{pause['reason']}; files wait in the inbox; next probe in "
            f"{pause['next_probe_in_seconds']} s",
            file=out,
        )
    for entry in report:
        counts = entry["counts"]
        shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "nothing yet"
        print(f"{entry['inbox']} ({entry['path']}): {shown}", file=out)
        oldest = entry["oldest_waiting"]
        if isinstance(oldest, dict):
            why = f": {oldest['waiting_for']}" if oldest["waiting_for"] else ""
            print(
                f"  oldest waiting: {oldest['path']} ({oldest['state']}{why}, "
                f"{oldest['age_seconds']} s)",
                file=out,
            )
        print(f"  in the error folder: {entry['in_error_folder']}", file=out)
        if entry["ignored_now"]:
            print(
                f"  ignored in the inbox: {entry['ignored_now']} (the file_ignored log lines "
                "and `ocrwatch explain PATH` say by which rule)",
                file=out,
            )
        for error in entry["last_errors"]:
            moved = error["path"] != error["came_from"]
            origin = f" (from {_relative(error['came_from'], entry['path'])})" if moved else ""
            print(f"  error: {error['path']}{origin}: [{error['class']}] {error['message']}",
                  file=out)  # fmt: skip


def _relative(path: str, folder: str) -> str:
    """``path`` as ``<folder name>/...`` when inside ``folder``, for a short line."""
    inside = Path(path).relative_to(folder) if Path(path).is_relative_to(folder) else None
    return path if inside is None else str(Path(Path(folder).name) / inside)
