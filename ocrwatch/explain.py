"""``ocrwatch explain PATH``: why a file was or was not processed, and what happens to it next.

It answers with the daemon's own decisions: the inbox and profile that match, the ignore
rule (``policy.candidate_verdict``), the refusal of a symlink or FIFO (``probe.refusal``),
the settle status as it stands now (size, age of the last change, ``probe.completeness``),
the preflight checks, and the file's job history. It never changes anything: the state
store is opened read-only, so it works while the daemon runs. The settle status is read
from the file's mtime, whereas the daemon counts from its own observations; the two agree
once a file has been quiet for a while.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

from ocrwatch import outputs, policy, probe
from ocrwatch.config import RESULT_TYPE_NAMES, Config, InboxConfig
from ocrwatch.conversion import conversion_for
from ocrwatch.errors import OcrwatchError
from ocrwatch.model import AccountPause, Fingerprint, Job, JobState
from ocrwatch.preflight import preflight_problem, upload_mode
from ocrwatch.store import Store, writer_running


@dataclass(slots=True)
class Explanation:
    path: str
    verdict: str  # one line: what the daemon does (or did) with this file
    facts: list[tuple[str, str]] = field(default_factory=list)  # (topic, text), in order
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first

    def add(self, topic: str, text: str) -> None:
        self.facts.append((topic, text))


def explain(config: Config, raw: Path, *, now: float | None = None) -> Explanation:
    now = time.time() if now is None else now
    path = _absolute(raw)
    owner = _reason_file_owner(config, path)
    if owner is not None:
        # A reason file is never processed itself: what the user wants is its file's story.
        report = explain(config, owner, now=now)
        report.facts.insert(
            0,
            (
                "reason file",
                f"{path.name} is ocrwatch's reason file for {owner.name}; "
                f"the rest is about {owner.name}",
            ),
        )
        return report
    report = Explanation(path=outputs.display_path(path), verdict="")
    inbox = _inbox_of(config, path)
    history_path = path
    if inbox is None:
        report.verdict = _outside(config, path, report)
        source = _reason_source(path)
        if source is not None:
            history_path = source
    else:
        report.verdict = _inside(config, inbox, path, report, now)
    jobs, pause = _add_history(config, history_path, report, inbox)
    if inbox is not None and jobs:
        report.verdict = _verdict_from_job(jobs[0], path, report.verdict)
        if pause is not None and jobs[0].state in (JobState.QUEUED, JobState.SUBMITTED):
            # Only the file whose request was refused has the refusal as its last error.
            report.verdict += (
                f"; held: the account's plan or quota refuses calls (HTTP {pause.http_status})"
                f" since {_iso(pause.since)}, next try {_iso(pause.probe_at)}"
            )
    return report


# ---------------------------------------------------------------------- where it is


def _absolute(raw: Path) -> Path:
    """Absolute, with the folders resolved but not the file itself (a symlink stays one)."""
    absolute = raw.absolute()
    return absolute.parent.resolve() / absolute.name


def _inbox_of(config: Config, path: Path) -> InboxConfig | None:
    for inbox in config.inboxes:
        if path != inbox.path and policy.is_within(path, inbox.path):
            return inbox
    return None


def _outside(config: Config, path: Path, report: Explanation) -> str:
    for inbox in config.inboxes:
        for role, folder in (
            ("error folder", inbox.error_dir),
            ("done folder", inbox.done_dir),
            ("output folder", inbox.output_dir),
        ):
            if folder is not None and policy.is_within(path, folder):
                report.add("where", f"in the {role} of inbox {inbox.name} ({folder})")
                if role == "error folder":
                    _add_reason(path, report)
                    return f"failed; `ocrwatch retry {report.path}` moves it back to the inbox"
                return f"in the {role} of inbox {inbox.name}: ocrwatch does not watch it"
    inboxes = ", ".join(f"{i.name} ({i.path})" for i in config.inboxes)
    report.add("where", f"not inside any inbox; the inboxes are: {inboxes}")
    return "not watched: not inside any inbox"


def _reason_file_owner(config: Config, path: Path) -> Path | None:
    """The file whose reason file ``path`` is, when it is one (in an error folder, or beside it)."""
    name = path.name
    if not name.endswith(outputs.REASON_SUFFIX) or name == outputs.REASON_SUFFIX:
        return None
    owner = path.with_name(name.removesuffix(outputs.REASON_SUFFIX))
    in_error_folder = any(
        inbox.error_dir is not None and policy.is_within(path, inbox.error_dir)
        for inbox in config.inboxes
    )
    return owner if in_error_folder or owner.exists() else None


def _reason_source(path: Path) -> Path | None:
    try:
        with outputs.reason_file_path(path).open("rb") as file:
            reason = json.loads(file.read(1 << 20))
    except (OSError, ValueError):
        return None
    source = reason.get("source_path") if isinstance(reason, dict) else None
    return Path(source) if isinstance(source, str) else None


def _add_reason(path: Path, report: Explanation) -> None:
    reason_path = outputs.reason_file_path(path)
    try:
        reason = json.loads(reason_path.read_bytes())
    except (OSError, ValueError) as exc:
        report.add("reason", f"no readable {reason_path.name}: {exc}")
        return
    if isinstance(reason, dict):
        report.add("reason", f"[{reason.get('class')}] {reason.get('message')}")
        report.add("came from", str(reason.get("source_path")))


# ---------------------------------------------------------------------- inside an inbox


def _inside(config: Config, inbox: InboxConfig, path: Path, report: Explanation, now: float) -> str:
    hooks = "hooks set" if not inbox.hooks.is_empty else "no hooks"
    names = {fmt: name for name, fmt in RESULT_TYPE_NAMES.items()}
    report.add(
        "inbox",
        f"{inbox.name} ({inbox.path}): mode {inbox.mode}, result types "
        f"{', '.join(names[f] for f in inbox.result_formats)}, settle {inbox.settle_seconds:g} s, "
        f"profile {inbox.profile_hash[:12]}, {hooks}",
    )
    relpath = PurePath(path.relative_to(inbox.path))
    if len(relpath.parts) > 1 and not inbox.recursive:
        report.add("rule", "in a subfolder, and the inbox is not recursive (recursive: false)")
        return "ignored: in a subfolder of a non-recursive inbox"
    verdict = policy.candidate_verdict(
        relpath,
        include=inbox.include,
        exclude=inbox.exclude,
        output_template=inbox.output_template,
        outputs_inside_inbox=inbox.output_dir is None
        or policy.is_within(inbox.output_dir, inbox.path),
    )
    if not verdict.accepted:
        report.add("rule", f"the daemon ignores it: {verdict.rule}")
        return f"ignored: {verdict.rule}"
    report.add("rule", "a candidate: no ignore rule matches, and the include patterns do")
    refusal = probe.refusal(path, inbox_root=inbox.path)
    if refusal == "vanished":
        report.add("file", "not there now")
        return "not in the inbox now"
    if refusal is not None:
        report.add("file", f"refused: {refusal}")
        return f"refused ({refusal}): it goes to the error folder"
    return _settle_status(config, inbox, path, report, now)


def _settle_status(
    config: Config, inbox: InboxConfig, path: Path, report: Explanation, now: float
) -> str:
    try:
        st = path.lstat()
        kind = probe.sniff(path)
        incomplete = probe.incompleteness(path, size=st.st_size)
    except (OSError, OcrwatchError) as exc:
        report.add("file", f"cannot be read now: {exc}")
        return "cannot be read now; the daemon tries again at its next look"
    quiet_seconds = max(0.0, now - st.st_mtime_ns / 1e9)
    report.add(
        "file",
        f"{st.st_size} bytes, {kind}, last changed {quiet_seconds:.1f} s ago "
        f"(settle_seconds {inbox.settle_seconds:g})",
    )
    report.add("complete", "looks complete" if incomplete is None else f"no: {incomplete}")
    if incomplete is not None:
        return (
            f"waiting: {incomplete} (fails as incomplete once unchanged for "
            f"incomplete_after_seconds {inbox.incomplete_after_seconds:g}, or after "
            f"max_settle_seconds {inbox.max_settle_seconds:g})"
        )
    if quiet_seconds < inbox.settle_seconds:
        return f"settling: {inbox.settle_seconds - quiet_seconds:.1f} s more without a change"
    trial = config.service.is_trial
    target = config.service.target
    try:
        facts = probe.inspect(path)
        problem, error_class = preflight_problem(facts, inbox, trial=trial, target=target)
    except (OSError, OcrwatchError) as exc:
        report.add("preflight", f"cannot be read now: {exc}")
        return "settled, but cannot be read now"
    if problem is not None:
        report.add("preflight", f"refused before upload [{error_class}]: {problem}")
        return f"refused before upload: {problem}"
    mode = upload_mode(facts, inbox, target=target)
    sent = conversion_for(facts.kind, mode=mode, target=target)
    report.add("preflight", f"passes: it would be submitted to the {target}, {sent} ({mode})")
    if not writer_running(config.state_path):
        return (
            "settled: no daemon is running on this state file; it is submitted when the daemon runs"
        )
    return "settled: it is submitted at the daemon's next look"


# ---------------------------------------------------------------------- history


def _add_history(
    config: Config, path: Path, report: Explanation, inbox: InboxConfig | None
) -> tuple[list[Job], AccountPause | None]:
    """The file's jobs, newest first, and the account pause in force (if any)."""
    if not config.state_path.exists():
        report.add("history", f"no state file yet at {config.state_path}: the daemon has not run")
        return [], None
    with Store.open(config.state_path, readonly=True) as store:
        jobs = store.history(path)
        pause = store.account_pause()
    if not jobs:
        report.add("history", "never seen by the daemon")
    report.history += [_job_view(job, inbox) for job in jobs]
    return jobs, pause


def _job_view(job: Job, inbox: InboxConfig | None) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "state": job.state.value,
        "inbox": job.inbox,
        "first_seen": _iso(job.first_seen_at),
        "updated": _iso(job.updated_at),
        "task_id": job.task_id,
        "attempts": job.attempts,
        "next_attempt": _iso(job.next_attempt_at),
        "error_class": job.error_class.value if job.error_class else None,
        "last_error": job.last_error,
        "profile_hash": job.profile_hash,
        "current_profile": inbox is not None and job.profile_hash == inbox.profile_hash,
    }


def _verdict_from_job(latest: Job, path: Path, fallback: str) -> str:
    """The newest job decides, unless the file on disk is new content since."""
    if latest.state.is_active:
        detail = f" ({latest.last_error})" if latest.last_error else ""
        return f"in progress: {latest.state}{detail}"
    if latest.state is JobState.DONE and latest.fingerprint is not None:
        try:
            st = path.lstat()
        except OSError:
            return fallback
        now_there = Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if latest.fingerprint.same_file_as(now_there):
            return "done: processed, and unchanged since"
    return fallback


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
