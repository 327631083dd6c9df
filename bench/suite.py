"""The benchmark suite: which runs, at what size, in what order (full and ``--quick``).

The full suite is sized to fit in about an hour on a 2-core machine with the server at 16
slots x 1 s (16 files/s): the 10,000-file backlog alone takes about 11 minutes and the long
stream ``stream_seconds`` (10 minutes by default). The baseline client is sequential and needs
about 2 s per file, so it runs on a 100-file subset of the backlog and on one minute of the
50 % stream, which it cannot keep up with. ``--quick`` shrinks everything to validate the
harness in a few minutes; its numbers are not results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.workloads import Workload

Kind = Literal["workload", "reconcile"]
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: Kind
    workload: Workload | None = None
    rows: int = 0
    variant: Literal["done", "queued"] = "done"


def scenarios(*, quick: bool, capacity: float, stream_seconds: float) -> list[Scenario]:
    """The runs, most important first (a suite cut short still has the key numbers)."""
    if quick:
        backlog_small, backlog_large, rows = 300, 1000, 10_000
        stream_seconds, short_stream = min(stream_seconds, 30.0), 20.0
        baseline_files, baseline_stream, upload_bytes = 5, 10.0, 5 * MIB
    else:
        backlog_small, backlog_large, rows = 1000, 10_000, 100_000
        short_stream = 120.0
        baseline_files, baseline_stream, upload_bytes = 100, 60.0, 50 * MIB
    half, most = 0.5 * capacity, 0.9 * capacity

    def backlog(name: str, files: int, client: Literal["daemon", "baseline"]) -> Scenario:
        per_file = 1.0 / capacity if client == "daemon" else 2.5
        wait = files * per_file * 1.5 + 60.0
        return Scenario(
            name,
            "workload",
            Workload(name, client, files, wait_after_last_drop_seconds=wait),
        )

    def stream(
        name: str, rate: float, seconds: float, *, token_lifetime_seconds: float = 3600.0
    ) -> Scenario:
        return Scenario(
            name,
            "workload",
            Workload(
                name,
                "daemon",
                round(rate * seconds),
                rate_per_second=rate,
                token_lifetime_seconds=token_lifetime_seconds,
                wait_after_last_drop_seconds=60.0,
            ),
        )

    baseline_stream_workload = Workload(
        "baseline-stream-50",
        "baseline",
        round(half * baseline_stream),
        rate_per_second=half,
        wait_after_last_drop_seconds=5.0,  # it never catches up: take what it finished
    )
    return [
        backlog(f"backlog-{backlog_small}", backlog_small, "daemon"),
        backlog(f"backlog-{backlog_large}", backlog_large, "daemon"),
        # The long stream: latency at 50 % load, memory slope, and a 60 s token lifetime so
        # the number of token requests per lifetime shows.
        stream("stream-50", half, stream_seconds, token_lifetime_seconds=60.0),
        Scenario(f"reconcile-done-{rows}", "reconcile", rows=rows, variant="done"),
        Scenario(
            "upload-large",
            "workload",
            Workload(
                "upload-large",
                "daemon",
                1,
                sample_interval_seconds=0.02,
                large_file_bytes=upload_bytes,
            ),
        ),
        backlog(f"baseline-backlog-{baseline_files}", baseline_files, "baseline"),
        stream("stream-90", most, short_stream),
        Scenario("baseline-stream-50", "workload", baseline_stream_workload),
        Scenario(f"reconcile-queued-{rows}", "reconcile", rows=rows, variant="queued"),
    ]
