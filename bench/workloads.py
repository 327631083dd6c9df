"""Drop files into an inbox on a schedule and measure what the client under test makes of it.

One run: the bench server (its own process, ``slots`` tasks at once, each held for
``processing_seconds``), the client (the daemon or the baseline, its own process), and this
harness, which renames staged files into the inbox (a backlog: all at once; a stream: at a
fixed rate, evenly spaced), stamps each rename, and stamps each sidecar's arrival (inotify).

What is measured, per run:

- throughput: files completed / (last sidecar - first drop), as a fraction of the server's
  capacity ``slots / processing_seconds``; for a backlog also the steady part (the 10th to
  the 90th percentile of completions), which leaves out the ramp at both ends;
- latency: sidecar time - drop time, p50/p95/p99, and the overhead above the inherent part
  (``settle_seconds + processing_seconds``);
- requests per file as the server counted them (submits, result GETs, status probes, tokens);
- the client's CPU seconds per file (utime + stime between ready and the last sidecar), its
  peak RSS (VmHWM) and its RSS over time, with the least-squares slope of the RSS;
- the load average during the run, and the server's own CPU, for the record.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import images, procstat
from bench.breakdown import stage_breakdown
from bench.daemon import (
    CLIENT_ID,
    ClientProcess,
    DaemonSettings,
    daemon_command,
    write_config,
)
from bench.inotify import ArrivalWatch
from bench.server import REPO_ROOT, ServerProcess
from bench.stats import percentile, rounded, slope

Client = Literal["daemon", "baseline"]
_SERIES_POINTS = 400
_LATENCY_BIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Setup:
    """The server's shape and the daemon's settings, shared by every run of a suite."""

    slots: int = 16
    processing_seconds: float = 1.0
    daemon: DaemonSettings = field(default_factory=DaemonSettings)

    @property
    def capacity_per_second(self) -> float:
        return self.slots / self.processing_seconds


@dataclass(frozen=True, slots=True)
class Workload:
    """What to drop, how fast, for which client; ``rate_per_second`` None is a backlog."""

    name: str
    client: Client
    files: int
    rate_per_second: float | None = None
    token_lifetime_seconds: float = 3600.0
    sample_interval_seconds: float = 0.5
    # How long after the last drop to wait for the last sidecar before giving up.
    wait_after_last_drop_seconds: float = 120.0
    large_file_bytes: int | None = None  # one large noise PNG instead of pool images


def run_workload(workload: Workload, setup: Setup, *, work: Path, pool: Path) -> dict[str, Any]:
    """Run one workload in ``work`` (a fresh folder) and return its results."""
    inbox, staging = work / "inbox", work / "staging"
    inbox.mkdir(parents=True)
    if workload.large_file_bytes is not None:
        source = staging / "large.png"
        size = images.make_large_png(
            source, size_bytes=workload.large_file_bytes, text="large document"
        )
        staged = [source]
        expected_text = {source.name: "large document"}
    else:
        sources = images.ensure_pool(pool, workload.files)
        staged = images.stage(sources, staging)
        size = sum(path.stat().st_size for path in staged)
        expected_text = {path.name: images.pool_text(i) for i, path in enumerate(staged)}
    with ServerProcess(
        slots=setup.slots,
        processing_seconds=setup.processing_seconds,
        token_lifetime_seconds=workload.token_lifetime_seconds,
        log_path=work / "server.log",
    ) as server:
        config = write_config(work, server.base_url, setup.daemon)
        command = (
            daemon_command(config, log_level=setup.daemon.log_level)
            if workload.client == "daemon"
            else _baseline_command(server.base_url, inbox, work, workload)
        )
        with ClientProcess(
            command, log_path=work / "client.log", workdir=work, cwd=REPO_ROOT
        ) as client:
            startup_seconds = (
                client.wait_ready(timeout_seconds=120) if workload.client == "daemon" else None
            )
            if workload.client == "baseline":
                time.sleep(1.0)  # let it import, get its token and see the empty folder
            result = _measure(
                workload, setup, server=server, client=client, staged=staged, inbox=inbox
            )
            client.terminate()
            result["client_exit_code"] = client.returncode
    if workload.client == "daemon":
        result["stages_seconds"] = stage_breakdown(
            work / "client.log",
            work / "timeline.csv",
            settle_seconds=setup.daemon.settle_seconds,
            processing_seconds=setup.processing_seconds,
        )
    result.update(
        name=workload.name,
        workload=asdict(workload),
        setup={**asdict(setup), "capacity_per_second": setup.capacity_per_second},
        startup_seconds=rounded(startup_seconds),
        bytes_dropped=size,
        errors_in_error_folder=_count(work / "errors"),
        wrong_text=_wrong_texts(inbox, result.pop("_completed_names"), expected_text),
    )
    return result


def _baseline_command(url: str, inbox: Path, work: Path, workload: Workload) -> list[str]:
    budget = workload.wait_after_last_drop_seconds + 3600.0
    return [
        sys.executable,
        "-m",
        "bench.baseline",
        "--url",
        url,
        "--folder",
        str(inbox),
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(work / "client_secret"),
        "--max-seconds",
        str(budget),
    ]


def _measure(
    workload: Workload,
    setup: Setup,
    *,
    server: ServerProcess,
    client: ClientProcess,
    staged: Sequence[Path],
    inbox: Path,
) -> dict[str, Any]:
    names = [path.name for path in staged]
    sidecars = {name + ".txt": name for name in names}
    interval = workload.sample_interval_seconds
    with (
        ArrivalWatch(inbox) as watch,
        procstat.Sampler(client.pid, interval_seconds=interval) as client_sampler,
    ):
        watch.expect(sidecars)
        server.reset()
        load_before = procstat.load_average()
        cpu_before = procstat.cpu_seconds(client.pid) or 0.0
        server_cpu_before = procstat.cpu_seconds(server.pid) or 0.0
        memory_before = procstat.memory_kib(client.pid) or (0, 0)
        dropped_at = _drop(staged, inbox, workload.rate_per_second)
        first_drop = min(dropped_at.values())
        deadline = max(dropped_at.values()) + workload.wait_after_last_drop_seconds
        is_complete = watch.wait_for_count(len(names), deadline=deadline)
        cpu_after = procstat.cpu_seconds(client.pid) or cpu_before
        server_cpu_after = procstat.cpu_seconds(server.pid) or server_cpu_before
        memory_after = procstat.memory_kib(client.pid) or memory_before
        stats = server.stats()
        arrivals = watch.arrivals()
        overflows = watch.overflows
    samples = client_sampler.samples()
    done = {sidecars[sidecar]: at for sidecar, at in arrivals.items()}
    _write_timeline(inbox.parent / "timeline.csv", names, dropped_at, done)
    latencies = [done[name] - dropped_at[name] for name in names if name in done]
    completions = sorted(at - first_drop for at in done.values())
    makespan = completions[-1] if completions else None
    inherent = setup.daemon.settle_seconds + setup.processing_seconds
    completed = len(done)
    submits = sum(stats["submits"].values())
    capacity = setup.capacity_per_second
    throughput = completed / makespan if makespan else None
    steady = _steady_throughput(completions)
    window = [s for s in samples if s.at >= first_drop]
    return {
        "files": len(names),
        "completed": completed,
        "is_complete": is_complete,
        "inotify_overflows": overflows,
        "offered_rate_per_second": workload.rate_per_second,
        "drop_seconds": rounded(max(dropped_at.values()) - first_drop),
        "makespan_seconds": rounded(makespan),
        "throughput_per_second": rounded(throughput),
        "throughput_fraction": rounded(throughput / capacity if throughput else None, 4),
        "steady_throughput_per_second": rounded(steady),
        "steady_throughput_fraction": rounded(steady / capacity if steady else None, 4),
        "latency_seconds": _quantiles(latencies),
        "overhead_seconds": _quantiles([x - inherent for x in latencies]),
        "inherent_seconds": inherent,
        "requests": {
            "submits": submits,
            "fetches": stats["fetches"],
            "status_probes": stats["status_probes"],
            "token_requests": stats["token_requests"],
            "unauthorized": stats["unauthorized"],
        },
        "requests_per_file": _per_file(stats, submits, completed),
        "token_lifetimes_elapsed": rounded((makespan or 0.0) / workload.token_lifetime_seconds, 2),
        "client_cpu_seconds": rounded(cpu_after - cpu_before),
        "client_cpu_seconds_per_file": rounded(
            (cpu_after - cpu_before) / completed if completed else None, 5
        ),
        "client_startup_cpu_seconds": rounded(cpu_before),
        "server_cpu_seconds": rounded(server_cpu_after - server_cpu_before),
        "client_rss_mib_before": rounded(memory_before[0] / 1024, 1),
        "client_rss_mib_after": rounded(memory_after[0] / 1024, 1),
        "client_peak_rss_mib": rounded(memory_after[1] / 1024, 1),
        "client_rss_slope_mib_per_minute": _rss_slope(window, first_drop, after_fraction=0.1),
        # The second half alone: growth that has levelled off is warm-up, not a leak.
        "client_rss_slope_late_mib_per_minute": _rss_slope(window, first_drop, after_fraction=0.5),
        "load_before": load_before,
        "load_during": _load(window),
        "series": {
            "rss": _downsample(
                [(round(s.at - first_drop, 2), round(s.rss_kib / 1024, 2)) for s in samples]
            ),
            "completions": _downsample([(round(t, 3), i + 1) for i, t in enumerate(completions)]),
            "latency_cdf": [rounded(percentile(latencies, q / 100)) for q in range(101)],
            "latency_p50_by_drop_time": _binned_latency(names, dropped_at, done, first_drop),
        },
        "_completed_names": list(done),
    }


def _drop(staged: Sequence[Path], inbox: Path, rate: float | None) -> dict[str, float]:
    """Rename each staged file into the inbox on schedule; the moment after each rename."""
    dropped: dict[str, float] = {}
    started = time.monotonic()
    for index, path in enumerate(staged):
        if rate is not None:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        path.rename(inbox / path.name)
        dropped[path.name] = time.monotonic()
    return dropped


def _write_timeline(
    path: Path, names: Sequence[str], dropped: dict[str, float], done: dict[str, float]
) -> None:
    """Each file's drop and sidecar time as wall-clock seconds, to line up with the logs."""
    offset = time.time() - time.monotonic()
    with path.open("w") as out:
        out.write("name,dropped_at,sidecar_at\n")
        for name in names:
            sidecar = f"{done[name] + offset:.6f}" if name in done else ""
            out.write(f"{name},{dropped[name] + offset:.6f},{sidecar}\n")


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": rounded(percentile(values, 0.50)),
        "p95": rounded(percentile(values, 0.95)),
        "p99": rounded(percentile(values, 0.99)),
        "max": rounded(max(values) if values else None),
        "mean": rounded(sum(values) / len(values) if values else None),
    }


def _per_file(stats: dict[str, Any], submits: int, completed: int) -> dict[str, float | None]:
    if not completed:
        return {}
    polls = stats["fetches"] + stats["status_probes"]
    total = submits + polls + stats["token_requests"]
    return {
        "submits": round(submits / completed, 3),
        "polls": round(polls / completed, 3),
        "tokens": round(stats["token_requests"] / completed, 5),
        "total": round(total / completed, 3),
    }


def _steady_throughput(completions: Sequence[float]) -> float | None:
    if len(completions) < 20:
        return None
    low = completions[int(len(completions) * 0.1)]
    high = completions[int(len(completions) * 0.9)]
    if high <= low:
        return None
    return (int(len(completions) * 0.9) - int(len(completions) * 0.1)) / (high - low)


def _rss_slope(
    samples: Sequence[procstat.Sample], first_drop: float, *, after_fraction: float
) -> float | None:
    """MiB per minute over the run, leaving out its first ``after_fraction`` (warm-up).

    None for a run shorter than a minute: its slope would say nothing about growth.
    """
    span = samples[-1].at - first_drop if samples else 0.0
    if span < 60.0:
        return None
    kept = [s for s in samples if s.at - first_drop >= after_fraction * span]
    value = slope([s.at / 60 for s in kept], [s.rss_kib / 1024 for s in kept])
    return rounded(value, 4)


def _load(samples: Sequence[procstat.Sample]) -> dict[str, float | None]:
    loads = [s.load1 for s in samples]
    return {
        "mean": rounded(sum(loads) / len(loads) if loads else None, 2),
        "max": rounded(max(loads) if loads else None, 2),
    }


def _binned_latency(
    names: Sequence[str], dropped: dict[str, float], done: dict[str, float], first: float
) -> list[tuple[float, float | None]]:
    bins: dict[int, list[float]] = {}
    for name in names:
        if name in done:
            key = int((dropped[name] - first) // _LATENCY_BIN_SECONDS)
            bins.setdefault(key, []).append(done[name] - dropped[name])
    return [
        (key * _LATENCY_BIN_SECONDS, rounded(percentile(values, 0.5)))
        for key, values in sorted(bins.items())
    ]


def _downsample(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= _SERIES_POINTS:
        return points
    step = len(points) / _SERIES_POINTS
    kept = [points[int(i * step)] for i in range(_SERIES_POINTS)]
    return [*kept, points[-1]]


def _count(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for entry in os.scandir(folder) if not entry.name.endswith(".error.json"))


def _wrong_texts(inbox: Path, completed: Sequence[str], expected: dict[str, str]) -> int:
    """Sidecars whose text is not the document's own (a mix-up would show here)."""
    wrong = 0
    for name in completed:
        try:
            text = (inbox / (name + ".txt")).read_text(encoding="utf-8")
        except OSError:
            wrong += 1
            continue
        if text.strip() != expected[name].strip():
            wrong += 1
    return wrong
