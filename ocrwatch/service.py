"""The daemon: one control thread that owns the state store and every file move.

Watchdog handler threads only put paths on ``intake``; uploads and polls run on two small
worker pools (``dispatch``) and hand their outcomes back. Everything else - discovery,
settling, state transitions, sidecar writes and error-folder moves (``finishing``) - happens
in ``tick(now)`` on the control thread, so there is a single writer and no lock on the store.

Intent is committed before every side effect: a row is SUBMITTING before its POST, SUBMITTED
with the task id right after, WRITING with the fetched results before any sidecar is
written, DISPOSING before the source is moved or deleted, and carries its error class before
the file goes to the error folder. ``reconcile`` reads those intents back after a crash.

A reload (SIGHUP) is only requested by the signal handler; ``tick`` performs it on the control
thread: the new file is validated first and the old config kept on any error; jobs already
started keep their profile (``reload.Profiles``). Metrics are counted here and in dispatch and
finishing, and published by ``exporter`` (a listener thread and/or a textfile).
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from ocrwatch import __version__, outputs, policy, probe
from ocrwatch.aspose import OcrApi
from ocrwatch.config import Config, InboxConfig, load_config
from ocrwatch.dispatch import Dispatcher
from ocrwatch.errors import ConfigError, InputFileError, TransientError
from ocrwatch.finishing import Finisher
from ocrwatch.heartbeat import Heartbeat
from ocrwatch.hooks import HookRunner
from ocrwatch.ignored import IgnoredFiles
from ocrwatch.metrics import Metrics
from ocrwatch.model import (
    AccountPause,
    DuplicatePolicy,
    ErrorClass,
    Job,
    JobState,
    WatchMode,
)
from ocrwatch.preflight import preflight_problem, upload_mode
from ocrwatch.progress import Progress
from ocrwatch.publisher import MetricsPublisher
from ocrwatch.reload import Profiles, effective_config, restart_only_changes
from ocrwatch.schedule import resume_poll_at
from ocrwatch.store import Store
from ocrwatch.watcher import Watchers, WatchSpec, filesystem_type, scan

log = structlog.get_logger(__name__)

IntakeItem = tuple[str, Path, bool] | None  # (inbox name, path, came from an event); None wakes
WATCH_CHECK_SECONDS = 10.0
MIN_RECHECK_SECONDS = 0.25
SHUTDOWN_GRACE_SECONDS = 8.0
STATUS_INTERVAL_SECONDS = 1.0
PRUNE_INTERVAL_SECONDS = 86400.0
FAILURE_RETRY_SECONDS = 60.0
PIN_CHECK_SECONDS = 60.0
PROGRESS_INTERVAL_SECONDS = 0.2
WAITING_LOG_INTERVAL_SECONDS = 60.0  # file_waiting_incomplete, per file
HOOKS_GRACE_SECONDS = 1.5
# One tick discovers, and checks for settling, at most this many files each, so a drop of
# thousands of files never holds up the uploads and polls of the files ahead of it.
MAX_DISCOVERIES_PER_TICK = 100
MAX_SETTLE_CHECKS_PER_TICK = 100
_WAITING = (JobState.SETTLING, JobState.QUEUED)
_IN_FLIGHT = (JobState.SUBMITTING, JobState.SUBMITTED)


class Notifier(Protocol):
    """What the service tells its supervisor (systemd); every call may be a no-op."""

    def ready(self) -> None: ...
    def status(self, text: str) -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self) -> None: ...
    def reloading(self) -> None: ...
    def reloaded(self, *, ok: bool, problems: Sequence[str] = ()) -> None: ...


class NullNotifier:
    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def reloaded(self, *, ok: bool, problems: Sequence[str] = ()) -> None:
        pass


@dataclass(slots=True)
class _Settling:
    state: policy.SettleState
    check_at: float
    # Set while the file is quiet but looks incomplete: why (`once` says it while it waits).
    incomplete_reason: str | None = None
    next_waiting_log_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    done: int
    failed: int
    # ``until_idle`` only: the account's refusals hold the files left (the run stopped there).
    held_by_account: AccountPause | None = None


OnProgress = Callable[[Progress], None]


class Service:
    """Runs the pipeline for every inbox of ``config`` against ``api``, with state in ``store``."""

    def __init__(
        self,
        config: Config,
        *,
        api: OcrApi,
        store: Store,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        watch: bool = True,
        metrics: Metrics | None = None,
        hooks: HookRunner | None = None,
        validate: Callable[[Config], None] | None = None,
    ) -> None:
        self.config = config
        self._api = api
        self._store = store
        self._notifier = notifier or NullNotifier()
        self._heartbeat = Heartbeat.from_environ()  # $OCRWATCH_HEARTBEAT_FILE, for containers
        self._clock = clock
        self._rng = rng or random.Random()
        self._watch = watch
        self.metrics = metrics or Metrics()
        self._validate = validate  # extra checks of a reloaded config; raises ConfigError
        self._profiles = Profiles(config.inboxes)
        self._hooks = hooks or HookRunner(on_result=self._count_hook, on_idle=self.wake)
        self.intake: queue.SimpleQueue[IntakeItem] = queue.SimpleQueue()
        self._finisher = Finisher(
            store=store,
            profiles=self._profiles,
            resettle=self._resettle,
            metrics=self.metrics,
            hooks=self._hooks,
        )
        self._dispatcher = Dispatcher(
            config.service,
            api=api,
            store=store,
            profiles=self._profiles,
            finisher=self._finisher,
            resettle=self._resettle,
            guard=self._guarded,
            wake=self.wake,
            rng=self._rng,
            metrics=self.metrics,
        )
        self._settling: dict[int, _Settling] = {}
        self._ignored = IgnoredFiles()  # which ignored files were logged already
        self._stop = threading.Event()
        self._watchers: Watchers | None = None
        self._next_rescan_at = 0.0
        self._next_watch_check_at = 0.0
        self._next_failure_retry_at = 0.0
        self._next_status_at = 0.0
        self._next_prune_at = 0.0
        self._next_pin_check_at = 0.0
        self._next_progress_at = 0.0
        self._problems: list[str] = []
        self._reload_requested = threading.Event()
        self._publisher = MetricsPublisher(config.metrics, metrics=self.metrics, store=store)
        self._publisher.declare_inboxes(self._profiles.current)

    # ----------------------------------------------------------------- lifecycle

    def now(self) -> float:
        """The service's own clock (wall-clock seconds unless a test injects another)."""
        return self._clock()

    def wake(self) -> None:
        self.intake.put(None)

    def request_stop(self) -> None:
        """Safe from a signal handler: sets a flag and wakes the loop."""
        self._stop.set()
        self.intake.put(None)

    def request_reload(self) -> None:
        """Safe from a signal handler: the loop reloads the config at its next tick."""
        self._reload_requested.set()
        self.intake.put(None)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def inboxes(self) -> Mapping[str, InboxConfig]:
        """The inboxes of the config in force (after any reload)."""
        return self._profiles.current

    def start(self) -> None:
        """Reconcile the store with the folders, start watching, and scan every inbox."""
        now = self._clock()
        for warning in self.config.warnings:
            log.warning("config_warning", message=warning)
        self.reconcile(now)
        if self._publisher.is_enabled:
            # The gauges exist before the listener serves its first scrape (and before READY).
            self.publish_metrics(now)
        self._publisher.start()
        if self._watch:
            self._watchers = Watchers(self._watch_specs(), self._on_event)
            self._watchers.start()
            self._check_watchers(now)
        self.rescan(now)
        self._next_rescan_at = now + self.config.rescan_interval_seconds

    def run(self, *, until_idle: bool = False, on_progress: OnProgress | None = None) -> RunSummary:
        """The main loop; returns when stopped, or (``until_idle``) when nothing is left to do.

        ``on_progress`` is called on the control thread after ticks (at most every 0.2 s)
        and once at the end.
        """
        held: AccountPause | None = None
        try:
            self.start()
            self._notifier.status(self.status_line())  # shown from the moment it is active
            if until_idle:
                # A run asked for by hand is worth one call: a pause left by an earlier run
                # is probed now (perhaps the quota was topped up), not waited out.
                self._dispatcher.account.probe_now(self._clock())
            self._notifier.ready()
            log.info("daemon_ready", inboxes=len(self.inboxes), version=__version__)
            while not self._stop.is_set():
                self._wait_for_work(self._clock())
                self.tick(self._clock())
                self._notifier.watchdog()
                self._heartbeat.beat()
                held = self.held_by_account() if until_idle else None
                idle = until_idle and (held is not None or self.is_idle())
                if on_progress is not None and (idle or time.monotonic() >= self._next_progress_at):
                    on_progress(self.progress())
                    self._next_progress_at = time.monotonic() + PROGRESS_INTERVAL_SECONDS
                if idle:
                    break
        finally:
            self.shutdown()
        return RunSummary(
            done=self._finisher.done_count,
            failed=self._finisher.failed_count,
            held_by_account=held,
        )

    def progress(self) -> Progress:
        counts = self._store.count_by_state()
        return Progress(
            done=self._finisher.done_count,
            failed=self._finisher.failed_count,
            active=sum(n for state, n in counts.items() if state.is_active),
            in_flight=sum(counts.get(state, 0) for state in _IN_FLIGHT),
            waiting_for=self._waiting_for(),
        )

    def _waiting_for(self) -> str | None:
        """What the oldest file held back as incomplete is waiting for (``once`` says it)."""
        held = [
            (entry.state.first_seen_at, job_id, entry)
            for job_id, entry in self._settling.items()
            if entry.incomplete_reason is not None
        ]
        if not held:
            return None
        _, job_id, entry = min(held, key=lambda item: item[:2])
        try:
            job = self._store.get(job_id)
            bound = self._profile(job).incomplete_after_seconds
        except LookupError:
            return None
        text = (
            f"{job.path.name}: {entry.incomplete_reason} "
            f"(fails as incomplete once unchanged for {bound:g} s)"
        )
        return text if len(held) == 1 else f"{text} (and {len(held) - 1} more)"

    def shutdown(self) -> None:
        self._notifier.stopping()
        log.info("daemon_stopping")
        if self._watchers is not None:
            self._watchers.stop()
            self._watchers = None
        # Give running calls a moment so a task id that is on its way back gets recorded;
        # stay within systemd's and the README's 10 s for a stop.
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self._dispatcher.busy_count and time.monotonic() < deadline:
            time.sleep(0.05)
            self._dispatcher.collect(self._clock())
        self._dispatcher.collect(self._clock())
        if self._dispatcher.uploads_running:
            # Their rows stay SUBMITTING and are resubmitted at the next start.
            log.warning("uploads_abandoned", count=self._dispatcher.uploads_running)
        self._dispatcher.close(timeout_seconds=0.5)
        if self.config.service.is_embedded:
            self._requeue_embedded_tasks(self._clock())
        self._hooks.close(timeout_seconds=HOOKS_GRACE_SECONDS)
        if self._publisher.is_enabled:
            self.publish_metrics(self._clock())  # the textfile ends with the final counts
        self._publisher.stop()

    def _requeue_embedded_tasks(self, now: float) -> None:
        """The embedded server's tasks end with this process: queue their files again.

        A clean stop is not the files' fault, so the lost submissions give their attempts
        back; the next start submits them at once.
        """
        with self._store.batch():
            for job in self._store.jobs(list(_IN_FLIGHT)):
                self._requeue_lost_task(job, now, at="stop", attempts=max(0, job.attempts - 1))

    def _requeue_lost_task(self, job: Job, now: float, *, at: str, attempts: int) -> None:
        """An embedded task ended with its server: submit the file again at once."""
        self._store.update(
            job.id,
            now=now,
            state=JobState.QUEUED,
            task_id=None,
            attempts=attempts,
            next_attempt_at=None,
        )
        log.warning(
            "task_lost_with_embedded_service",
            job_id=job.id,
            path=str(job.path),
            task_id=job.task_id,
            at=at,
            attempts=attempts,
        )

    @property
    def calls_running(self) -> int:
        """Uploads and polls still running on the worker pools (a test waits for them)."""
        return self._dispatcher.running_count

    def is_idle(self) -> bool:
        """Nothing is active: every file found so far is done or failed, and its hooks ran."""
        if self._dispatcher.busy_count or not self.intake.empty() or not self._hooks.is_idle:
            return False
        counts = self._store.count_by_state()
        return not any(n for state, n in counts.items() if state.is_active)

    def held_by_account(self) -> AccountPause | None:
        """The account pause, when it alone keeps every remaining file from finishing.

        ``once`` stops there: waiting out a quota is the daemon's job. Calls in flight, files
        still settling and polls the account still allows are waited for first.
        """
        now = self._clock()
        account = self._dispatcher.account
        pause = account.pause
        if pause is None or account.allows_submit(now):
            return None
        if self._dispatcher.busy_count or not self.intake.empty() or not self._hooks.is_idle:
            return None
        held = {JobState.QUEUED}
        if not account.allows_poll(now):
            held.add(JobState.SUBMITTED)
        counts = self._store.count_by_state()
        if any(n for state, n in counts.items() if state.is_active and state not in held):
            return None
        return pause

    def _wait_for_work(self, now: float) -> None:
        timeout = max(0.0, min(1.0, self._next_wakeup(now) - now))
        with contextlib.suppress(queue.Empty):
            item = self.intake.get(timeout=timeout)
            if item is not None:
                self.intake.put(item)  # tick drains it with the rest

    def _next_wakeup(self, now: float) -> float:
        """The earliest moment something is due: a settle check, a poll, a retry."""
        wake = now + 1.0
        for entry in self._settling.values():
            wake = min(wake, entry.check_at)
        return self._dispatcher.next_due_at(now, horizon=wake)

    # ----------------------------------------------------------------- one step

    def tick(self, now: float) -> None:
        """One deterministic step of the pipeline at time ``now``."""
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload(now)
        self._drain_intake(now)
        self._dispatcher.collect(now)
        self._check_settling(now)
        if not self._stop.is_set():
            self._dispatcher.send_due(now)
            self._finish_due(now)
        if now >= self._next_failure_retry_at:
            self._finisher.retry_pending_failures(now)
            self._next_failure_retry_at = now + FAILURE_RETRY_SECONDS
        if now >= self._next_rescan_at:
            self.rescan(now)
            self._next_rescan_at = now + self.config.rescan_interval_seconds
        if now >= self._next_prune_at:
            self._prune(now)
        if self._watchers is not None and now >= self._next_watch_check_at:
            self._check_watchers(now)
        if now >= self._next_status_at:
            self._notifier.status(self.status_line())
            self._next_status_at = now + STATUS_INTERVAL_SECONDS
        if now >= self._next_pin_check_at:
            self._release_finished_pins(now)
        if self._publisher.due(now):
            self.publish_metrics(now)

    def publish_metrics(self, now: float) -> None:
        self._publisher.publish(
            now,
            inboxes=self._profiles.names(),
            breaker=self._dispatcher.breaker.state,
            watch_problems=len(self._problems),
        )

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the metrics listener listens (the port is known once started), if it does."""
        return self._publisher.listen_address

    def status_line(self) -> str:
        counts = self._store.count_by_state()
        waiting = counts.get(JobState.SETTLING, 0) + counts.get(JobState.QUEUED, 0)
        in_flight = counts.get(JobState.SUBMITTING, 0) + counts.get(JobState.SUBMITTED, 0)
        inboxes = f"{len(self.inboxes)} inbox{'' if len(self.inboxes) == 1 else 'es'}"
        text = (
            f"watching {inboxes}; {waiting} waiting, {in_flight} in flight, "
            f"{self._finisher.done_count} done, {self._finisher.failed_count} failed"
        )
        if self._dispatcher.is_paused:
            text += "; service unavailable, paused"
        if self._dispatcher.account.pause is not None:
            text += "; the account's plan or quota refuses calls, submissions paused"
        if self._problems:
            text += f"; {len(self._problems)} problem(s): {self._problems[0]}"
        return text

    def _drain_intake(self, now: float) -> None:
        items: list[tuple[str, Path, bool]] = []
        while len(items) < MAX_DISCOVERIES_PER_TICK:  # the rest wait for the next tick
            try:
                item = self.intake.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        if not items:
            return
        with self._store.batch():
            for name, path, is_event in items:
                inbox = self.inboxes.get(name)
                if inbox is not None:
                    self._discover(inbox, path, now, is_event=is_event)

    # ----------------------------------------------------------------- discovery and settling

    def rescan(self, now: float) -> None:
        """Feed every file present in every inbox through discovery (start-up and periodic)."""
        for inbox in self.inboxes.values():
            try:
                with self._store.batch():
                    for path in scan(inbox.path, recursive=inbox.recursive):
                        self._discover(inbox, path, now, is_event=False)
            except OSError as exc:
                # Missing, unmounted or unreadable: the other inboxes carry on; the watcher
                # check reports it and the next rescan tries again.
                log.warning("inbox_scan_failed", inbox=inbox.name, error=str(exc))

    def _discover(self, inbox: InboxConfig, path: Path, now: float, *, is_event: bool) -> None:
        try:
            relpath = path.relative_to(inbox.path)
        except ValueError:
            return
        verdict = policy.candidate_verdict(
            relpath,
            include=inbox.include,
            exclude=inbox.exclude,
            output_template=inbox.output_template,
            outputs_inside_inbox=self._outputs_inside_inbox(inbox),
        )
        if not verdict.accepted:
            if verdict.is_notable:
                self._log_ignored(inbox, path, verdict.rule, now)
            return
        job = self._store.active_job_for(path)
        if job is not None:
            entry = self._settling.get(job.id)
            if entry is not None and is_event:
                entry.state = policy.observe(
                    entry.state,
                    size=entry.state.size,
                    mtime_ns=entry.state.mtime_ns,
                    now=now,
                    event=True,
                )
                entry.check_at = min(entry.check_at, now + inbox.settle_seconds)
            return
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.info("file_not_readable_yet", inbox=inbox.name, path=str(path), error=str(exc))
            return  # seen again at the next event or rescan
        if self._is_already_done(path, st):
            return
        job = self._store.add_job(
            inbox=inbox.name, path=path, profile_hash=inbox.profile_hash, now=now
        )
        self.metrics.inc("ocrwatch_files_discovered_total", inbox=inbox.name)
        log.info("file_discovered", inbox=inbox.name, path=str(path), job_id=job.id)
        self._track_settling(job, st, now, event=is_event)

    def _is_already_done(self, path: Path, st: os.stat_result) -> bool:
        """A kept source that was processed before, unchanged since: nothing to do."""
        for job in self._store.history(path)[:1]:
            fp = job.fingerprint
            if job.state is JobState.DONE and fp is not None:
                return (fp.device, fp.inode, fp.size, fp.mtime_ns) == (
                    st.st_dev,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                )
        return False

    def _track_settling(self, job: Job, st: os.stat_result, now: float, *, event: bool) -> None:
        state = policy.observe(None, size=st.st_size, mtime_ns=st.st_mtime_ns, now=now, event=event)
        inbox = self._profile(job)
        self._settling[job.id] = _Settling(state=state, check_at=now + inbox.settle_seconds)

    def _check_settling(self, now: float) -> None:
        due = [job_id for job_id, entry in self._settling.items() if entry.check_at <= now]
        for job_id in due[:MAX_SETTLE_CHECKS_PER_TICK]:  # the rest are due at the next tick
            job = self._store.get(job_id)
            if job.state is not JobState.SETTLING:
                self._settling.pop(job_id, None)
                continue
            self._guarded(job, now, self._check_one_settling)

    def _check_one_settling(self, job: Job, now: float) -> None:
        inbox = self._profile(job)
        entry = self._settling[job.id]
        try:
            self._observe_settling(job, inbox, entry, now)
        except FileNotFoundError:
            self._forget(job, "vanished while settling")
        except InputFileError as exc:  # e.g. permission denied: an expected, permanent outcome
            self._settling.pop(job.id, None)
            self._finisher.fail(job, ErrorClass.UNREADABLE, str(exc), now)
        except (OSError, TransientError) as exc:
            # Busy, stale or still changing (a share hiccup, a writer that paused): look
            # again later; max_settle_seconds still bounds the wait.
            entry.check_at = now + max(MIN_RECHECK_SECONDS, inbox.settle_seconds)
            log.info("settle_check_postponed", job_id=job.id, path=str(job.path), error=str(exc))
            if now - entry.state.first_seen_at >= inbox.max_settle_seconds:
                self._settling.pop(job.id, None)
                self._finisher.fail(job, ErrorClass.NEVER_SETTLED, f"unreadable: {exc}", now)

    def _observe_settling(self, job: Job, inbox: InboxConfig, entry: _Settling, now: float) -> None:
        refusal = probe.refusal(job.path, inbox_root=inbox.path)
        if refusal == "vanished":
            self._forget(job, "vanished while settling")
            return
        if refusal == "outside the inbox":
            # A folder on its path was swapped for a link: the file now lives elsewhere and
            # is not ours to move. Forget the job; what is really in the inbox is found again.
            self._forget(job, "its path now leads outside the inbox")
            return
        if refusal is not None:
            self._finisher.fail(job, ErrorClass.UNSUPPORTED, f"refused: {refusal}", now)
            return
        st = job.path.lstat()
        entry.state = policy.observe(
            entry.state, size=st.st_size, mtime_ns=st.st_mtime_ns, now=now, event=False
        )
        looks_complete: bool | None = None
        incomplete: str | None = None
        if now - max(entry.state.last_change_at, entry.state.last_event_at) >= inbox.settle_seconds:
            incomplete = probe.incompleteness(job.path, size=st.st_size)
            looks_complete = incomplete is None
        verdict = policy.settle_verdict(
            entry.state,
            now=now,
            settle_seconds=inbox.settle_seconds,
            max_settle_seconds=inbox.max_settle_seconds,
            incomplete_after_seconds=inbox.incomplete_after_seconds,
            looks_complete=looks_complete,
            incomplete_reason=incomplete,
        )
        entry.incomplete_reason = verdict.reason if verdict.fails_at is not None else None
        if verdict.fails_at is not None and now >= entry.next_waiting_log_at:
            entry.next_waiting_log_at = now + WAITING_LOG_INTERVAL_SECONDS
            log.info(
                "file_waiting_incomplete",
                job_id=job.id,
                path=str(job.path),
                reason=verdict.reason,
                fails_in_seconds=round(verdict.fails_at - now, 1),
            )
        if verdict.kind == "wait":
            # Never sooner than MIN_RECHECK_SECONDS: with settle_seconds 0 and a file that
            # looks incomplete, "check again now" would spin the loop re-reading it.
            entry.check_at = max(
                verdict.check_again_at or now + min(1.0, inbox.settle_seconds),
                now + MIN_RECHECK_SECONDS,
            )
            return
        self._settling.pop(job.id, None)
        if verdict.kind == "never_settled":
            self._finisher.fail(job, ErrorClass.NEVER_SETTLED, verdict.reason, now)
            return
        if verdict.kind == "incomplete":
            self._finisher.fail(job, ErrorClass.INCOMPLETE, verdict.reason, now)
            return
        self._on_settled(job, inbox, now)

    def _on_settled(self, job: Job, inbox: InboxConfig, now: float) -> None:
        try:
            self._admit(job, inbox, now)
        except FileNotFoundError:
            self._forget(job, "vanished while settling")
        except (OSError, TransientError) as exc:
            # It changed while being hashed, or the share hiccupped: settle it again.
            log.info("settle_restarted", job_id=job.id, path=str(job.path), error=str(exc))
            self._resettle(job, now)

    def _admit(self, job: Job, inbox: InboxConfig, now: float) -> None:
        """A settled file: refuse it, reuse a stored result, or queue it for the service."""
        facts = probe.inspect(job.path)
        target = self.config.service.target
        problem, error_class = preflight_problem(
            facts, inbox, trial=self._api.is_trial, target=target
        )
        if problem is not None:
            self._finisher.fail(job, error_class, problem, now)
            return
        mode = upload_mode(facts, inbox, target=target)
        fingerprint = probe.fingerprint(job.path, with_hash=True)
        log.info("file_settled", inbox=inbox.name, path=str(job.path), job_id=job.id)
        if inbox.duplicates is not DuplicatePolicy.REPROCESS and fingerprint.sha256:
            found = self._store.find_done_results(
                sha256=fingerprint.sha256, profile_hash=inbox.profile_hash, under=inbox.path
            )
            if found is not None:
                original, results = found
                if inbox.duplicates is DuplicatePolicy.SKIP:
                    self._store.update(
                        job.id,
                        now=now,
                        state=JobState.DONE,
                        fingerprint=fingerprint,
                        mode=mode,
                        last_error=f"duplicate of {original.path}; skipped",
                    )
                    self._profiles.release(job.id)
                    log.info("duplicate_skipped", path=str(job.path), original=str(original.path))
                    return
                with self._store.batch():
                    self._store.save_results(job.id, results)
                    job = self._store.update(
                        job.id, now=now, state=JobState.WRITING, fingerprint=fingerprint, mode=mode
                    )
                log.info("duplicate_reused", path=str(job.path), original=str(original.path))
                self._finisher.write_outputs(job, now)
                return
        self._store.update(
            job.id,
            now=now,
            state=JobState.QUEUED,
            fingerprint=fingerprint,
            mode=mode,
            next_attempt_at=None,
        )

    def _finish_due(self, now: float) -> None:
        """Sidecar writes and disposals that were postponed (disk full) or left by a crash."""
        for job in self._store.due([JobState.WRITING, JobState.DISPOSING], now=now, limit=50):
            finisher = self._finisher
            step = finisher.write_outputs if job.state is JobState.WRITING else finisher.dispose
            self._guarded(job, now, step)

    def _guarded(self, job: Job, now: float, step: Callable[[Job, float], None]) -> None:
        """The one place a bug in one file's step is caught: no file can stop the daemon."""
        try:
            step(job, now)
        except Exception as exc:  # the unit of work is one job
            log.exception("job_step_crashed", job_id=job.id, path=str(job.path))
            try:
                self._finisher.fail(
                    self._store.get(job.id), ErrorClass.UNREADABLE, f"internal error: {exc}", now
                )
            except Exception:  # the job stays as it is; the next start reconciles it
                log.exception("job_fail_crashed", job_id=job.id, path=str(job.path))

    def _resettle(self, job: Job, now: float) -> None:
        """Watch this job's file settle again (it changed, or the daemon restarted)."""
        try:
            st = job.path.lstat()
        except FileNotFoundError:
            self._forget(job, "vanished")
            return
        self._track_settling(job, st, now, event=True)

    def _prune(self, now: float) -> None:
        cutoff = now - self.config.keep_history_days * 86400.0
        deleted = self._store.prune(finished_before=cutoff)
        if deleted:
            log.info("history_pruned", rows=deleted, older_than_days=self.config.keep_history_days)
        self._next_prune_at = now + PRUNE_INTERVAL_SECONDS

    def _profile(self, job: Job) -> InboxConfig:
        """The profile ``job`` runs under: the one it started with (see ``reload.Profiles``)."""
        profile = self._profiles.for_job(job)
        if profile is None:
            raise KeyError(f"job {job.id}: inbox {job.inbox!r} is not configured")
        return profile

    def _release_finished_pins(self, now: float) -> None:
        """A safety net: jobs that ended by a path that did not release their older profile."""
        for job_id in self._profiles.pinned_ids():
            try:
                finished = not self._store.get(job_id).state.is_active
            except LookupError:
                finished = True
            if finished:
                self._profiles.release(job_id)
        self._next_pin_check_at = now + PIN_CHECK_SECONDS

    def _count_hook(self, inbox: str, hook: str, result: str) -> None:
        self.metrics.inc("ocrwatch_hook_runs_total", inbox=inbox, hook=hook, result=result)

    # ----------------------------------------------------------------- reloading

    def reload(self, now: float) -> bool:
        """Re-read the config file; swap it in if valid, else keep the one in force.

        Jobs already started keep their profile. What only a restart can change (the service
        section, the state path, logging, metrics) is kept as it is, and logged. The supervisor
        hears RELOADING=1 first and the outcome last (``ocrwatch reload`` waits for it).
        """
        self._notifier.reloading()
        source = self.config.source_path
        if source is None:
            problems = ["the config was not read from a file"]
            log.warning("config_reload_failed", problems=problems)
            self.metrics.inc("ocrwatch_config_reloads_total", result="failed")
            self._notifier.reloaded(ok=False, problems=problems)
            return False
        try:
            new = load_config(source)
            if self._validate is not None:
                self._validate(new)
        except ConfigError as exc:
            log.error(  # noqa: TRY400 - the problems are the message; no traceback wanted
                "config_reload_failed", path=str(source), problems=list(exc.problems)
            )
            self.metrics.inc("ocrwatch_config_reloads_total", result="failed")
            self._notifier.reloaded(ok=False, problems=exc.problems)
            return False
        kept = restart_only_changes(self.config, new)
        if kept:
            log.warning("config_reload_needs_restart", sections=kept)
        new = effective_config(self.config, new)
        active = self._store.jobs([s for s in JobState if s.is_active])
        swap = self._profiles.swap(new.inboxes, active)
        for job in swap.orphaned:
            self._forget(job, f"inbox {job.inbox!r} was removed from the config")
        self.config = new
        self._publisher.declare_inboxes(self._profiles.current)
        for warning in new.warnings:
            log.warning("config_warning", message=warning)
        if self._watchers is not None:
            # Events in the gap are caught by the rescan below.
            self._watchers.stop()
            self._watchers = Watchers(self._watch_specs(), self._on_event)
            self._watchers.start()
            self._check_watchers(now)
        # A reload is how an operator says something changed, a top-up or a new plan among
        # them: a pause of the account is probed now rather than at its probe time.
        self._dispatcher.account.probe_now(now)
        self.rescan(now)
        self._next_rescan_at = now + new.rescan_interval_seconds
        self.metrics.inc("ocrwatch_config_reloads_total", result="ok")
        log.info(
            "config_reloaded",
            path=str(source),
            inboxes=len(new.inboxes),
            added=list(swap.added),
            removed=list(swap.removed),
            changed=list(swap.changed),
            jobs_keeping_old_profile=swap.pinned,
            restart_needed_for=kept,
        )
        self._notifier.reloaded(ok=True)
        self._next_status_at = now  # the STATUS line again, as systemd may show the refusal
        return True

    def _forget(self, job: Job, why: str) -> None:
        self._settling.pop(job.id, None)
        self._profiles.release(job.id)
        self._dispatcher.forget(job.id)
        self._store.delete(job.id)
        log.info("file_forgotten", job_id=job.id, path=str(job.path), reason=why)

    # ----------------------------------------------------------------- start-up reconciliation

    def reconcile(self, now: float) -> None:
        """Decide the fate of every active row left by the previous run, before READY."""
        counts: dict[str, int] = {}
        # Paged: a row is only ever updated or deleted after its page was read, never added.
        for job in self._store.iter_jobs([s for s in JobState if s.is_active]):
            action = self._guarded_reconcile(job, now)
            counts[action] = counts.get(action, 0) + 1
        # A crash can leave temp files wherever ocrwatch writes: sidecars (beside the sources
        # or in the output folder), reason files in the error folder, copies in the done one.
        for directory in self._output_directories():
            with contextlib.suppress(OSError):
                outputs.remove_stale_temp_files(
                    directory, older_than_seconds=0.0, now=now, recursive=True
                )
        log.info("reconciled", **counts)

    def _guarded_reconcile(self, job: Job, now: float) -> str:
        inbox = self._profiles.for_job(job)
        if inbox is None:
            # Its inbox was renamed or removed from the config. Forget the row: if the file
            # is in a configured inbox, the start-up scan finds it again under that one.
            log.warning(
                "job_of_unknown_inbox_forgotten",
                job_id=job.id,
                inbox=job.inbox,
                path=str(job.path),
                task_id=job.task_id,
            )
            self._forget(job, f"inbox {job.inbox!r} is no longer configured")
            return "unknown_inbox"
        if job.error_class is not None:
            self._guarded(job, now, self._finisher.fail_again)
            return "failing"
        exists = os.path.lexists(job.path)
        if not exists and job.state in (
            JobState.SETTLING,
            JobState.QUEUED,
            JobState.SUBMITTING,
            JobState.SUBMITTED,
        ):
            self._forget(job, "vanished while the daemon was down")
            return "forgotten"
        if job.state is JobState.SETTLING:
            self._resettle(job, now)
            return "settling"
        if job.state in _IN_FLIGHT and self.config.service.is_embedded:
            # The embedded server died with the previous run, and that run did not stop
            # cleanly (a stop requeues its tasks): the file being read may be what killed it,
            # so this loss keeps its attempt, and a file that keeps crashing the daemon ends
            # in the error folder instead of restarting it forever.
            if job.attempts >= self.config.service.max_attempts:
                message = (
                    f"the daemon stopped without a clean shutdown {job.attempts} times while "
                    "the embedded engine was reading this file"
                )
                self._guarded(
                    job,
                    now,
                    lambda job, now: self._finisher.fail(
                        job, ErrorClass.ATTEMPTS_EXHAUSTED, message, now
                    ),
                )
                return "failing"
            self._requeue_lost_task(job, now, at="crash", attempts=job.attempts)
            return "resubmit_lost"
        if job.state is JobState.SUBMITTING:
            # The POST may or may not have reached the service; no task id was recorded.
            self._store.update(job.id, now=now, state=JobState.QUEUED, next_attempt_at=None)
            log.warning("task_resubmit_after_crash", job_id=job.id, path=str(job.path))
            return "resubmit"
        if job.state is JobState.SUBMITTED:
            self._dispatcher.resume(job.id)
            when = resume_poll_at(
                now, scheduled_at=job.next_attempt_at, last_http_status=job.http_status
            )
            self._store.update(job.id, now=now, next_attempt_at=when)
            return "resume_polling"
        if job.state is JobState.WRITING:
            self._guarded(job, now, self._finisher.write_outputs)
            return "rewrite"
        if job.state is JobState.DISPOSING:
            self._guarded(job, now, self._finisher.dispose)
            return "dispose"
        return "queued"

    # ----------------------------------------------------------------- watching

    def _log_ignored(self, inbox: InboxConfig, path: Path, rule: str | None, now: float) -> None:
        notice = self._ignored.note(str(path), now=now)
        if notice.suppressed:
            log.info("files_ignored_not_logged", count=notice.suppressed)
        if notice.log:
            log.info("file_ignored", inbox=inbox.name, path=str(path), rule=rule)

    def _outputs_inside_inbox(self, inbox: InboxConfig) -> bool:
        return inbox.output_dir is None or policy.is_within(inbox.output_dir, inbox.path)

    def _output_directories(self) -> Iterator[Path]:
        seen: set[Path] = set()
        for inbox in self.inboxes.values():
            for directory in (inbox.output_dir or inbox.path, inbox.error_dir, inbox.done_dir):
                if directory is not None and directory not in seen:
                    seen.add(directory)
                    yield directory

    def _watch_specs(self) -> list[WatchSpec]:
        specs = []
        for inbox in self.inboxes.values():
            mode, why = policy.choose_watch_mode(inbox.watch, filesystem_type(inbox.path))
            log.info("inbox_watch_mode", inbox=inbox.name, mode=mode.value, reason=why)
            specs.append(
                WatchSpec(
                    name=inbox.name,
                    root=inbox.path,
                    recursive=inbox.recursive,
                    mode=mode if mode is not WatchMode.AUTO else WatchMode.EVENTS,
                    polling_interval_seconds=inbox.polling_interval_seconds,
                )
            )
        return specs

    def _on_event(self, inbox_name: str, path: Path, is_event: bool) -> None:
        self.intake.put((inbox_name, path, is_event))  # called on watchdog threads

    def _check_watchers(self, now: float) -> None:
        assert self._watchers is not None
        problems = self._watchers.check()
        for problem in problems:
            if problem not in self._problems:
                log.warning("inbox_not_watched", problem=problem)
        self._problems = problems
        self._next_watch_check_at = now + WATCH_CHECK_SECONDS
