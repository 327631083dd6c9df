"""The daemon's metrics, and their rendering in the Prometheus text exposition format (0.0.4).

Every family is declared once below, with its type, help text and label names, so a typo in
a name or a label fails at once instead of silently starting a new series.

Thread safety: the control thread updates counters and gauges, the upload and poll workers
observe API latencies, hook workers count hook runs, and the metrics listener renders from
its own thread. One lock guards every read and write; ``render`` builds the whole text under
it, so a scrape never sees half an update (a counter bumped without its sibling).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[str, ...]  # label values, in the family's label-name order

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family("ocrwatch_build_info", "gauge", "Always 1; the version is a label.", ("version",)),
    Family("ocrwatch_files_discovered_total", "counter", "Files taken on.", ("inbox",)),
    Family(
        "ocrwatch_tasks_submitted_total", "counter", "Tasks created at the service.", ("inbox",)
    ),
    Family(
        "ocrwatch_files_completed_total",
        "counter",
        "Files whose sidecars were written.",
        ("inbox",),
    ),
    Family(
        "ocrwatch_files_failed_total",
        "counter",
        "Files moved to the error folder, by error class.",
        ("inbox", "error_class"),
    ),
    Family(
        "ocrwatch_api_failures_total",
        "counter",
        "Failed API calls, by operation and kind (transient, authentication, quota, rejected).",
        ("operation", "kind"),
    ),
    Family(
        "ocrwatch_api_request_duration_seconds",
        "histogram",
        "Duration of API calls (submit: the upload; poll: status and result fetch).",
        ("operation",),
    ),
    Family(
        "ocrwatch_jobs", "gauge", "Jobs by state (finished ones are history).", ("inbox", "state")
    ),
    Family("ocrwatch_tasks_in_flight", "gauge", "Tasks submitted and not finished.", ("inbox",)),
    Family(
        "ocrwatch_oldest_waiting_seconds",
        "gauge",
        "Age of the oldest file not yet submitted (0 if none).",
        ("inbox",),
    ),
    Family(
        "ocrwatch_circuit_breaker_state",
        "gauge",
        "1 for the circuit breaker's current state.",
        ("state",),
    ),
    Family(
        "ocrwatch_quota_paused",
        "gauge",
        "1 while submissions are paused because the account's plan or quota refuses calls.",
    ),
    Family(
        "ocrwatch_quota_refusals_total",
        "counter",
        "API calls refused for the account's plan or quota, by HTTP status.",
        ("status",),
    ),
    Family("ocrwatch_watch_problems", "gauge", "Inboxes that are not being watched right now."),
    Family(
        "ocrwatch_hook_runs_total",
        "counter",
        "Hook runs by hook and result (ok, failed, timeout, dropped).",
        ("inbox", "hook", "result"),
    ),
    Family("ocrwatch_config_reloads_total", "counter", "Config reloads by result.", ("result",)),
    Family(
        "ocrwatch_metrics_updated_timestamp_seconds",
        "gauge",
        "When the gauges were last refreshed (Unix time).",
    ),
)
_BY_NAME = {family.name: family for family in FAMILIES}


@dataclass(slots=True)
class _Histogram:
    counts: list[int]  # per bucket, not cumulative; the last one is +Inf
    total: float = 0.0


class Metrics:
    """The values of every family in ``FAMILIES``; safe to update and render from any thread."""

    def __init__(self, *, buckets: Iterable[float] = LATENCY_BUCKETS_SECONDS) -> None:
        self._buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {f.name: {} for f in FAMILIES}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {
            f.name: {} for f in FAMILIES if f.kind == "histogram"
        }

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels, kind="counter")
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + amount

    def declare(self, name: str, **labels: str) -> None:
        """Show a counter series at 0 before its first event, so ``rate()`` sees it start."""
        key = self._key(name, labels, kind="counter")
        with self._lock:
            self._values[name].setdefault(key, 0.0)

    def set(self, name: str, value: float, **labels: str) -> None:
        key = self._key(name, labels, kind="gauge")
        with self._lock:
            self._values[name][key] = value

    def replace(self, name: str, series: Mapping[Labels, float]) -> None:
        """Set every series of a gauge at once; series not given disappear (a removed inbox)."""
        family = _family(name, kind="gauge")
        for key in series:
            if len(key) != len(family.labels):
                raise ValueError(f"{name}: expected labels {family.labels}, got {key}")
        with self._lock:
            self._values[name] = dict(series)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = self._key(name, labels, kind="histogram")
        index = bisect.bisect_left(self._buckets, seconds)  # le: a value on a bound counts in it
        with self._lock:
            histogram = self._histograms[name].get(key)
            if histogram is None:
                histogram = _Histogram(counts=[0] * (len(self._buckets) + 1))
                self._histograms[name][key] = histogram
            histogram.counts[index] += 1
            histogram.total += seconds

    def value(self, name: str, **labels: str) -> float | None:
        """One counter or gauge value (for tests and the status line), None if never set."""
        family = _family(name)
        key = tuple(labels[label] for label in family.labels)
        with self._lock:
            return self._values[name].get(key)

    def render(self) -> str:
        """All families in the Prometheus text format, ending with a newline."""
        lines: list[str] = []
        with self._lock:
            for family in FAMILIES:
                lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
                lines.append(f"# TYPE {family.name} {family.kind}")
                if family.kind == "histogram":
                    for key, histogram in sorted(self._histograms[family.name].items()):
                        lines.extend(self._histogram_lines(family, key, histogram))
                    continue
                for key, number in sorted(self._values[family.name].items()):
                    lines.append(f"{family.name}{_labels(family.labels, key)} {_number(number)}")
        return "\n".join(lines) + "\n"

    def _histogram_lines(self, family: Family, key: Labels, histogram: _Histogram) -> list[str]:
        lines = []
        cumulative = 0
        bounds = [*(_number(b) for b in self._buckets), "+Inf"]
        for bound, count in zip(bounds, histogram.counts, strict=True):
            cumulative += count
            labels = _labels((*family.labels, "le"), (*key, bound))
            lines.append(f"{family.name}_bucket{labels} {cumulative}")
        plain = _labels(family.labels, key)
        lines.append(f"{family.name}_sum{plain} {_number(histogram.total)}")
        lines.append(f"{family.name}_count{plain} {cumulative}")
        return lines

    def _key(self, name: str, labels: Mapping[str, str], *, kind: Kind) -> Labels:
        family = _family(name, kind=kind)
        if set(labels) != set(family.labels):
            raise ValueError(f"{name}: expected labels {family.labels}, got {sorted(labels)}")
        return tuple(str(labels[label]) for label in family.labels)


def _family(name: str, *, kind: Kind | None = None) -> Family:
    family = _BY_NAME.get(name)
    if family is None:
        raise KeyError(f"no metric family {name!r}")
    if kind is not None and family.kind != kind:
        raise ValueError(f"{name} is a {family.kind}, not a {kind}")
    return family


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
