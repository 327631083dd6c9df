"""Publish the daemon's metrics: refresh the gauges from the store, serve them, write the textfile.

Runs on the control thread, the only user of the store: every ``interval_seconds`` it reads
the jobs by state, the tasks in flight and the oldest waiting file per inbox into the
gauges, then rewrites the node-exporter textfile if one is configured. The listener thread
only ever renders ``Metrics`` (which has its own lock), never touches the store.

A textfile that cannot be written is logged once per distinct error and tried again at the
next interval; it never stops the daemon. A listener that cannot bind (port taken) is logged
and left off: metrics are an aid, not a reason to refuse to process files.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import structlog

from ocrwatch import __version__, exporter
from ocrwatch.config import MetricsConfig
from ocrwatch.metrics import Labels, Metrics
from ocrwatch.model import ErrorClass, JobState
from ocrwatch.schedule import BreakerState
from ocrwatch.store import Store

log = structlog.get_logger(__name__)

_IN_FLIGHT = (JobState.SUBMITTING, JobState.SUBMITTED)


class MetricsPublisher:
    """Keeps ``metrics``' gauges fresh and hands them to the listener and the textfile."""

    def __init__(self, config: MetricsConfig, *, metrics: Metrics, store: Store) -> None:
        self._config = config
        self._metrics = metrics
        self._store = store
        self._listener: exporter.MetricsListener | None = None
        self._process: exporter.ProcessMetrics | None = None  # made on first use
        self._textfile_process: exporter.ProcessMetrics | None = None
        self._textfile_error: str | None = None
        self._next_at = 0.0
        metrics.set("ocrwatch_build_info", 1, version=__version__)

    @property
    def is_enabled(self) -> bool:
        return self._config.listen is not None or self._config.textfile is not None

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return None if self._listener is None else self._listener.address

    def declare_inboxes(self, names: Iterable[str]) -> None:
        """Show each inbox's counters at 0 from the start, so ``rate()`` sees them begin."""
        for name in names:
            for family in (
                "ocrwatch_files_discovered_total",
                "ocrwatch_tasks_submitted_total",
                "ocrwatch_files_completed_total",
            ):
                self._metrics.declare(family, inbox=name)
            for error_class in ErrorClass:
                self._metrics.declare(
                    "ocrwatch_files_failed_total", inbox=name, error_class=error_class.value
                )

    def start(self) -> None:
        if self._config.listen is None:
            return
        host, port = self._config.listen
        self._process = exporter.ProcessMetrics()
        try:
            self._listener = exporter.MetricsListener(host, port, render=self._render_for_scrape)
        except OSError as exc:
            log.warning("metrics_listener_failed", host=host, port=port, error=str(exc))
            return
        self._listener.start()

    def _render_for_scrape(self) -> str:  # on the listener's threads
        process = "" if self._process is None else self._process.render()
        return self._metrics.render() + process

    def _render_for_textfile(self) -> str:  # on the control thread
        if self._textfile_process is None:
            self._textfile_process = exporter.ProcessMetrics(prefix="ocrwatch")
        return self._metrics.render() + self._textfile_process.render()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def due(self, now: float) -> bool:
        return self.is_enabled and now >= self._next_at

    def publish(
        self,
        now: float,
        *,
        inboxes: Collection[str],
        breaker: BreakerState,
        watch_problems: int,
    ) -> None:
        """Refresh every gauge from the store and write the textfile (if one is configured)."""
        self._next_at = now + self._config.interval_seconds
        jobs: dict[Labels, float] = {}
        in_flight: dict[Labels, float] = {}
        oldest: dict[Labels, float] = {}
        for inbox in inboxes:
            counts = self._store.count_by_state(inbox=inbox)
            for state in JobState:
                jobs[(inbox, state.value)] = counts.get(state, 0)
            in_flight[(inbox,)] = sum(counts.get(state, 0) for state in _IN_FLIGHT)
            waiting = self._store.oldest_waiting(inbox=inbox)
            oldest[(inbox,)] = 0.0 if waiting is None else max(0.0, now - waiting.first_seen_at)
        self._metrics.replace("ocrwatch_jobs", jobs)
        self._metrics.replace("ocrwatch_tasks_in_flight", in_flight)
        self._metrics.replace("ocrwatch_oldest_waiting_seconds", oldest)
        self._metrics.replace(
            "ocrwatch_circuit_breaker_state",
            {(state.value,): float(state is breaker) for state in BreakerState},
        )
        self._metrics.set("ocrwatch_quota_paused", int(self._store.account_pause() is not None))
        self._metrics.set("ocrwatch_watch_problems", watch_problems)
        self._metrics.set("ocrwatch_metrics_updated_timestamp_seconds", round(now, 3))
        if self._config.textfile is not None:
            self._write_textfile()

    def _write_textfile(self) -> None:
        assert self._config.textfile is not None
        try:
            exporter.write_textfile(self._config.textfile, self._render_for_textfile())
        except OSError as exc:
            if str(exc) != self._textfile_error:
                log.warning(
                    "metrics_textfile_failed", path=str(self._config.textfile), error=str(exc)
                )
            self._textfile_error = str(exc)
            return
        if self._textfile_error is not None:
            log.info("metrics_textfile_written", path=str(self._config.textfile))
        self._textfile_error = None
