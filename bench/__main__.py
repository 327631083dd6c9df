"""``python -m bench``: run the benchmark suite, or render its report.

    .venv/bin/python -m bench run [--quick] [--only NAME,...]
    .venv/bin/python -m bench report

``run`` executes the scenarios of ``bench.suite`` one after another, each in a fresh temporary
folder, waiting for a quiet machine before each (unless ``--no-wait``), and merges each
result into the results file as soon as it is known (``bench/results/full.json``, or
``quick.json`` with ``--quick``), so a suite cut short keeps what it measured and ``--only``
re-runs single scenarios. ``report`` turns the full results into the table and plots of
``docs/benchmarks.md``; ``run`` without ``--quick`` does that at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.daemon import DaemonSettings
from bench.reconcile import run_reconcile
from bench.server import REPO_ROOT
from bench.suite import Scenario, scenarios
from bench.workloads import Setup, run_workload

RESULTS_DIR = REPO_ROOT / "bench" / "results"
POOL_DIR = Path(tempfile.gettempdir()) / "ocrwatch-bench-pool"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the suite (or some scenarios of it)")
    run.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    run.add_argument("--only", default="", help="comma-separated scenario names (prefixes)")
    run.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    run.add_argument("--quiet-load", type=float, default=0.7, help="load1 below this is quiet")
    run.add_argument("--max-wait", type=float, default=1200.0, help="seconds to wait for quiet")
    run.add_argument("--stream-seconds", type=float, default=600.0, help="the long stream")
    run.add_argument("--slots", type=int, default=16)
    run.add_argument("--processing-seconds", type=float, default=1.0)
    run.add_argument("--settle-seconds", type=float, default=0.5)
    run.add_argument("--max-in-flight", type=int, default=32)
    run.add_argument("--upload-concurrency", type=int, default=4)
    run.add_argument("--poll-concurrency", type=int, default=4)
    run.add_argument("--keep", action="store_true", help="keep each run's folder (logs, state)")
    commands.add_parser("report", help="render docs/benchmarks.md from bench/results/full.json")
    args = parser.parse_args(argv)
    if args.command == "report":
        report.render(_load(RESULTS_DIR / "full.json"))
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    setup = Setup(
        slots=args.slots,
        processing_seconds=args.processing_seconds,
        daemon=DaemonSettings(
            settle_seconds=args.settle_seconds,
            max_in_flight=args.max_in_flight,
            upload_concurrency=args.upload_concurrency,
            poll_concurrency=args.poll_concurrency,
        ),
    )
    chosen = scenarios(
        quick=args.quick, capacity=setup.capacity_per_second, stream_seconds=args.stream_seconds
    )
    wanted = [name for name in args.only.split(",") if name]
    if wanted:
        chosen = [s for s in chosen if any(s.name.startswith(w) for w in wanted)]
    results_path = RESULTS_DIR / ("quick.json" if args.quick else "full.json")
    results = _load(results_path)
    results["machine"] = machine.describe()
    results["command"] = "python -m bench run" + (" --quick" if args.quick else "")
    for scenario in chosen:
        quiet = (
            {"waited_seconds": 0, "quiet": None, "load": None}
            if args.no_wait
            else machine.wait_until_quiet(
                threshold=args.quiet_load, hold_seconds=30.0, max_wait_seconds=args.max_wait
            )
        )
        print(f"{scenario.name}: starting (load {quiet['load']})", flush=True)
        started = time.monotonic()
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        outcome = _run_one(scenario, setup, keep=args.keep)
        outcome["quiet_wait"] = quiet
        outcome["started_at"] = started_at
        outcome["command"] = " ".join(["python -m bench", *sys.argv[1:]])
        outcome["commit"] = results["machine"]["commit"]
        outcome["wall_seconds"] = round(time.monotonic() - started, 1)
        results.setdefault("runs", {})[scenario.name] = outcome
        _save(results_path, results)
        print(f"{scenario.name}: {report.one_line(outcome)}", flush=True)
    if not args.quick:
        report.render(results)
    return 0


def _run_one(scenario: Scenario, setup: Setup, *, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"ocrwatch-bench-{scenario.name}-"))
    try:
        if scenario.kind == "reconcile":
            return run_reconcile(
                rows=scenario.rows,
                variant=scenario.variant,
                work=work,
                pool=POOL_DIR,
                settings=setup.daemon,
            )
        assert scenario.workload is not None
        return run_workload(scenario.workload, setup, work=work, pool=POOL_DIR)
    finally:
        if keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(results, indent=1) + "\n")
    temp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
