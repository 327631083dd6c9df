"""Turn the suite's results into the tables and plots of ``docs/benchmarks.md``.

The document is written by hand except for the part between the ``results:begin`` and
``results:end`` markers, which ``render`` replaces: the machine, the targets with their
verdicts, every run's numbers, the baseline ratios, and the plots (PNG, matplotlib with the
Agg backend, written to ``docs/benchmarks/``).
"""

from __future__ import annotations

import math
from typing import Any

from bench.breakdown import STAGES
from bench.server import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
PLOTS = REPO_ROOT / "docs" / "benchmarks"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MB = 1_000_000
MIB = 1024 * 1024
DAEMON_RUNS = ("backlog-1000", "backlog-10000", "stream-50", "stream-90")


def one_line(run: dict[str, Any]) -> str:
    """A console summary of one run."""
    if "full_start" in run:
        return (
            f"ready after {run['full_start']['ready_seconds']} s with {run['rows']} rows "
            f"(empty start {run['empty_start']['ready_seconds']} s)"
        )
    return (
        f"{run['completed']}/{run['files']} files, "
        f"{_pct(run['throughput_fraction'])} of capacity, "
        f"latency p50 {run['latency_seconds']['p50']} s, "
        f"overhead p50 {run['overhead_seconds']['p50']} s, "
        f"{run['requests_per_file'].get('polls')} polls/file, "
        f"peak RSS {run['client_peak_rss_mib']} MiB, load {run['load_during']['mean']}"
    )


def render(results: dict[str, Any]) -> None:
    runs: dict[str, dict[str, Any]] = results.get("runs", {})
    PLOTS.mkdir(parents=True, exist_ok=True)
    plots = _plots(runs)
    lines = [
        BEGIN,
        "",
        *_machine(results),
        "",
        "### Targets",
        "",
        "| target | goal | measured | verdict |",
        "|---|---|---|---|",
        *_targets(runs),
        "",
        "### Every run",
        "",
        *_run_table(runs),
        "",
        *_start_table(runs),
        "",
        "Where the time goes inside the daemon, p50 / p95 in seconds (`bench/breakdown.py`):",
        "",
        *_stage_table(runs),
        "",
        "### Against the tutorial client",
        "",
        *_baseline(runs),
        "",
        *[f"![{title}](benchmarks/{name})" for name, title in plots],
        "",
        END,
    ]
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join(lines) + tail)


# ------------------------------------------------------------------------------ sections


def _machine(results: dict[str, Any]) -> list[str]:
    m = results.get("machine", {})
    default = results.get("command", "python -m bench run")
    commands: list[str] = []
    for run in results.get("runs", {}).values():
        command = run.get("command", default)
        if command not in commands:
            commands.append(command)
    shown = " then ".join(f"`.venv/bin/{c}`" for c in commands)
    return [
        f"Machine: {m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gib')} GiB "
        f"RAM, Linux {m.get('kernel')}, Python {m.get('python')}; {_commits(results)}. "
        f"Commands: {shown}. Each run's start time, the load before it and its wall time "
        "are in `bench/results/full.json`.",
    ]


def _commits(results: dict[str, Any]) -> str:
    """Which commit of ocrwatch each run measured (a re-run of some scenarios mixes them)."""
    by_commit: dict[str, list[str]] = {}
    for name, run in results.get("runs", {}).items():
        commit = run.get("commit") or results.get("machine", {}).get("commit")
        by_commit.setdefault(str(commit), []).append(name)
    if len(by_commit) <= 1:
        return f"ocrwatch at commit `{next(iter(by_commit), None)}`"
    parts = [f"`{commit}` for {', '.join(names)}" for commit, names in by_commit.items()]
    return "ocrwatch at commit " + "; ".join(parts)


def _targets(runs: dict[str, dict[str, Any]]) -> list[str]:
    rows: list[str] = []
    for name in ("backlog-1000", "backlog-10000"):
        run = runs.get(name)
        if run:
            value = run["throughput_fraction"]
            rows.append(
                _row(
                    f"backlog throughput, {run['files']:,} files",
                    ">= 90 % of capacity",
                    f"{_pct(value)} ({run['throughput_per_second']} files/s of "
                    f"{run['setup']['capacity_per_second']:g}; steady part "
                    f"{_pct(run['steady_throughput_fraction'])})",
                    _margin(value - 0.90, "points", scale=100),
                )
            )
    stream = runs.get("stream-50")
    if stream:
        p50 = stream["overhead_seconds"]["p50"]
        rows.append(
            _row(
                "overhead above settle + processing, stream at 50 %",
                "p50 <= 250 ms",
                f"p50 {p50 * 1000:.0f} ms, p95 {stream['overhead_seconds']['p95'] * 1000:.0f} ms"
                f" (inherent {stream['inherent_seconds']:g} s)",
                _margin((0.250 - p50) * 1000, "ms"),
            )
        )
    polls = {n: runs[n]["requests_per_file"]["polls"] for n in DAEMON_RUNS if n in runs}
    if polls:
        worst = max(polls.values())
        rows.append(
            _row(
                "polling requests per file",
                "<= 3 on average",
                ", ".join(f"{n}: {v:.2f}" for n, v in polls.items()),
                _margin(3 - worst, "polls per file (worst run)"),
            )
        )
    if stream:
        tokens = stream["requests"]["token_requests"]
        lifetime = stream["workload"]["token_lifetime_seconds"]
        lifetimes = stream["token_lifetimes_elapsed"]
        allowed = math.floor(lifetimes / 0.9) + 1
        rows.append(
            _row(
                "token requests",
                "one per token lifetime",
                f"{tokens} over {lifetimes:g} lifetimes of {lifetime:g} s (stream-50); "
                "1 in every other run (3600 s)",
                "met (renewed 10 % before expiry, as designed)"
                if tokens <= allowed
                else f"NOT met: {tokens} > {allowed}",
            )
        )
    backlog = runs.get("backlog-10000")
    if backlog:
        peak = backlog["client_peak_rss_mib"] * MIB / MB
        rows.append(
            _row(
                "daemon RSS with 10,000 files waiting",
                "<= 100 MB",
                f"peak {peak:.1f} MB ({backlog['client_peak_rss_mib']} MiB)",
                _margin(100 - peak, "MB"),
            )
        )
    if stream:
        slope = stream["client_rss_slope_mib_per_minute"]
        late = stream["client_rss_slope_late_mib_per_minute"]
        minutes = stream["makespan_seconds"] / 60
        rows.append(
            _row(
                f"RSS growth over a {minutes:.0f}-minute stream at 50 %",
                "no growth",
                f"second half: {late:+.4f} MiB/min ({late * 30:+.2f} MiB per 30 min); "
                f"whole run after the first 10 %: {slope:+.3f} MiB/min; "
                f"{stream['client_rss_mib_before']} -> {stream['client_rss_mib_after']} MiB",
                "met" if abs(late * 30) < 1.0 else "**NOT met**",
            )
        )
    for name, run in runs.items():
        if name.startswith("reconcile-") and run["rows"] >= 100_000:
            ready = run["full_start"]["ready_seconds"]
            rows.append(
                _row(
                    f"start-up, {run['rows']:,} {run['variant']} rows + files",
                    "<= 10 s to READY",
                    f"{ready} s (empty start {run['empty_start']['ready_seconds']} s)",
                    _margin(10 - ready, "s"),
                )
            )
    upload = runs.get("upload-large")
    if upload:
        size = upload["bytes_dropped"]
        peak = upload["client_peak_rss_mib"] * MIB
        rows.append(
            _row(
                f"peak RSS uploading a {size / MB:.0f} MB file",
                f"< 3 x file size ({3 * size / MB:.0f} MB)",
                f"{peak / MB:.1f} MB ({peak / size:.2f} x; idle "
                f"{upload['client_rss_mib_before'] * MIB / MB:.1f} MB)",
                _margin((3 * size - peak) / MB, "MB"),
            )
        )
    return rows


def _run_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| run | files done | offered | throughput (of capacity) | latency p50 / p95 s | "
        "overhead p50 / p95 s | requests per file: POST / GET / token | CPU ms per file | "
        "peak RSS MiB | RSS slope, 2nd half, MiB/min | load mean / max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        if "full_start" in run:
            continue
        rate = run["offered_rate_per_second"]
        per_file = run["requests_per_file"]
        cpu = run["client_cpu_seconds_per_file"]
        rows.append(
            f"| {name} | {run['completed']:,}/{run['files']:,} | "
            f"{'backlog' if rate is None else f'{rate:g}/s'} | "
            f"{run['throughput_per_second']}/s ({_pct(run['throughput_fraction'])}) | "
            f"{run['latency_seconds']['p50']} / {run['latency_seconds']['p95']} | "
            f"{run['overhead_seconds']['p50']} / {run['overhead_seconds']['p95']} | "
            f"{per_file.get('submits')} / {per_file.get('polls')} / {per_file.get('tokens')} | "
            f"{cpu * 1000:.1f} | {run['client_peak_rss_mib']} | "
            f"{_late_or_na(run)} | "
            f"{run['load_during']['mean']} / {run['load_during']['max']} |"
        )
    return rows


def _start_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| start-up | rows + files | to READY | empty start | CPU s to READY | peak RSS MiB"
        " | load before |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        if "full_start" not in run:
            continue
        full = run["full_start"]
        rows.append(
            f"| {name} | {run['rows']:,} | {full['ready_seconds']} s | "
            f"{run['empty_start']['ready_seconds']} s | {full['cpu_seconds_to_ready']} | "
            f"{full['peak_rss_mib_at_ready']} | {full['load_before']} |"
        )
    return rows


def _stage_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    stages = STAGES
    rows = [
        "| run | " + " | ".join(stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for name, run in runs.items():
        found = run.get("stages_seconds")
        if found:
            cells = [f"{found[s]['p50']} / {found[s]['p95']}" for s in stages]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def _baseline(runs: dict[str, dict[str, Any]]) -> list[str]:
    base = next((r for n, r in runs.items() if n.startswith("baseline-backlog")), None)
    daemon = runs.get("backlog-1000")
    lines: list[str] = []
    if base and daemon:
        lines += [
            "| per file | daemon (backlog-1000) | tutorial client "
            f"(backlog of {base['files']}) | ratio |",
            "|---|---|---|---|",
            _ratio_row(
                "throughput, files/s",
                daemon["throughput_per_second"],
                base["throughput_per_second"],
            ),
            _ratio_row(
                "requests per file",
                daemon["requests_per_file"]["total"],
                base["requests_per_file"]["total"],
            ),
            _ratio_row(
                "CPU ms per file",
                daemon["client_cpu_seconds_per_file"] * 1000,
                base["client_cpu_seconds_per_file"] * 1000,
            ),
            _ratio_row(
                "peak RSS MiB",
                daemon["client_peak_rss_mib"],
                base["client_peak_rss_mib"],
            ),
        ]
    stream_base, stream = runs.get("baseline-stream-50"), runs.get("stream-50")
    if stream_base and stream:
        lines += [
            "",
            f"On the stream at 50 % load ({stream_base['offered_rate_per_second']:g} files/s) "
            f"the tutorial client finished {stream_base['completed']} of the "
            f"{stream_base['files']} files dropped in "
            f"{stream_base['workload']['files'] / stream_base['offered_rate_per_second']:.0f} s"
            f" (p50 latency of those {stream_base['latency_seconds']['p50']} s, and growing "
            "without bound); the daemon kept up with every file at p50 "
            f"{stream['latency_seconds']['p50']} s.",
        ]
    return lines


def _ratio_row(label: str, daemon: float, baseline: float) -> str:
    ratio = daemon / baseline if baseline else float("nan")
    return f"| {label} | {daemon:.3g} | {baseline:.3g} | {ratio:.2f} x |"


def _row(target: str, goal: str, measured: str, verdict: str) -> str:
    return f"| {target} | {goal} | {measured} | {verdict} |"


def _margin(amount: float, unit: str, *, scale: float = 1.0) -> str:
    value = amount * scale
    if value >= 0:
        return f"met by {value:.1f} {unit}"
    return f"**NOT met**, short by {-value:.1f} {unit}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


# ------------------------------------------------------------------------------ plots


def _plots(runs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    made: list[tuple[str, str]] = []

    daemon_backlogs = [n for n in runs if n.startswith("backlog")]
    baseline_backlog = next((n for n in runs if n.startswith("baseline-backlog")), None)
    if daemon_backlogs:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        for name in daemon_backlogs:
            run = runs[name]
            ideal = run["files"] / run["setup"]["capacity_per_second"]
            points = run["series"]["completions"]
            left.plot(
                [p[0] / ideal for p in points],
                [p[1] / run["files"] for p in points],
                label=f"{name} (ideal {ideal:.0f} s)",
            )
        left.plot([0, 1], [0, 1], linestyle=":", color="grey", label="the server's capacity")
        left.set_xlabel("time since the drop / (files / capacity)")
        left.set_ylabel("fraction of the backlog done")
        left.set_title("Daemon: backlog done over time")
        left.legend()
        if baseline_backlog is not None:
            base = runs[baseline_backlog]
            count = base["files"]
            for name in [*daemon_backlogs[:1], baseline_backlog]:
                points = [p for p in runs[name]["series"]["completions"] if p[1] <= count]
                right.plot([p[0] for p in points], [p[1] for p in points], label=name)
            right.set_xscale("log")
            right.xaxis.set_major_formatter(ticker.ScalarFormatter())
            right.xaxis.set_minor_formatter(ticker.NullFormatter())
            right.set_xticks([1, 2, 5, 10, 20, 50, 100, 200])
            right.set_xlabel("seconds since the drop (log)")
            right.set_ylabel("sidecars written")
            right.set_title(f"The first {count} files: daemon and tutorial client")
            right.legend()
        else:
            right.set_axis_off()
        fig.tight_layout()
        fig.savefig(PLOTS / "backlog.png", dpi=100)
        plt.close(fig)
        made.append(("backlog.png", "Backlog completions over time"))

    streams = [n for n in runs if "stream" in n]
    if streams:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name in streams:
            cdf = runs[name]["series"]["latency_cdf"]
            ax.plot(cdf, [i / 100 for i in range(len(cdf))], label=name)
        inherent = runs[streams[0]]["inherent_seconds"]
        ax.axvline(inherent, linestyle=":", color="grey")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks([1, 1.5, 2, 3, 5, 10, 20, 50])
        ax.set_xlabel(f"drop-to-sidecar latency, s (dotted: settle + processing = {inherent:g} s)")
        ax.set_ylabel("fraction of files")
        ax.set_title("Streams: latency distribution")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "latency.png", dpi=100)
        plt.close(fig)
        made.append(("latency.png", "Latency distribution of the streams"))

    memory = [n for n in runs if "series" in runs[n] and runs[n]["workload"]["client"] == "daemon"]
    if memory:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name in memory:
            points = runs[name]["series"]["rss"]
            ax.plot([p[0] / 60 for p in points], [p[1] for p in points], label=name)
        ax.set_xlabel("minutes since the first drop")
        ax.set_ylabel("daemon RSS, MiB")
        ax.set_ylim(bottom=0)
        ax.set_title("Daemon memory over time")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "rss.png", dpi=100)
        plt.close(fig)
        made.append(("rss.png", "Daemon RSS over time"))
    return made


def _late_or_na(run: dict[str, Any]) -> str:
    late = run.get("client_rss_slope_late_mib_per_minute")
    return "n/a" if late is None else f"{late:+.4f}"
