"""The report ``ocrwatch status`` prints: per inbox, jobs by state, the oldest waiting file,
the error folder, the files its rules ignore, the last errors, and whether the account's
plan or quota holds submissions.

Read-only: the state file is opened read-only (the daemon may be running) and the inboxes
are only listed. The ignored count is taken from the folder as it is now, by the same rules
the daemon applies, so it agrees with ``ocrwatch explain`` and the ``file_ignored`` log lines
(ocrwatch's own sidecars, temporaries and reason files are not counted).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocrwatch import policy
from ocrwatch.config import Config, InboxConfig
from ocrwatch.model import AccountPause, JobState
from ocrwatch.requeue import failed_files
from ocrwatch.store import Store
from ocrwatch.watcher import scan

LAST_ERRORS = 5


def status_report(config: Config, *, now: float) -> list[dict[str, Any]]:
    """One JSON-able entry per inbox; the state file must exist."""
    report: list[dict[str, Any]] = []
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
                    "oldest_waiting": None
                    if oldest is None
                    else {
                        "path": str(oldest.path),
                        "state": oldest.state.value,
                        "age_seconds": round(now - oldest.first_seen_at, 1),
                    },
                    "in_error_folder": sum(1 for i, _ in failed_files(config) if i is inbox),
                    "ignored_now": ignored_count(inbox),
                    # The same for every inbox: the account's plan or quota holds them all.
                    "submissions_paused": None if pause is None else _pause_view(pause, now),
                    "last_errors": [
                        {
                            "path": str(job.path),
                            "class": job.error_class.value if job.error_class else None,
                            "message": job.last_error,
                            "at": job.updated_at,
                        }
                        for job in failures
                    ],
                }
            )
    return report


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
