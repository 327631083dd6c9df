"""Prometheus metrics: the text format, thread safety, and a real daemon scraped over HTTP."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import requests
from daemon_harness import running_service, write_config
from daemon_process import Daemon, daemon, wait_for

from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.exporter import write_textfile
from ocrwatch.metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Parse the exposition format strictly enough to catch a malformed line."""
    samples: Samples = {}
    types: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"malformed line: {line!r}"
        labels = frozenset(_LABEL.findall(match[3] or ""))
        value = match[4]
        samples[(match[1], labels)] = float(value.replace("+Inf", "inf"))
    return samples, types


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_text_format_escapes_labels_and_accumulates_histogram_buckets() -> None:
    metrics = Metrics(buckets=(0.1, 1.0))
    metrics.inc("ocrwatch_files_discovered_total", inbox='we"ird\\in\nbox')
    metrics.inc("ocrwatch_files_discovered_total", 2, inbox="scans")
    metrics.observe("ocrwatch_api_request_duration_seconds", 0.05, operation="submit")
    metrics.observe("ocrwatch_api_request_duration_seconds", 0.1, operation="submit")
    metrics.observe("ocrwatch_api_request_duration_seconds", 5.0, operation="submit")

    text = metrics.render()
    samples, types = parse(text)

    assert 'inbox="we\\"ird\\\\in\\nbox"' in text
    assert sample(samples, "ocrwatch_files_discovered_total", inbox="scans") == 2
    assert types["ocrwatch_api_request_duration_seconds"] == "histogram"
    buckets = {
        le: sample(
            samples, "ocrwatch_api_request_duration_seconds_bucket", operation="submit", le=le
        )
        for le in ("0.1", "1", "+Inf")
    }
    assert buckets == {"0.1": 2, "1": 2, "+Inf": 3}
    assert sample(samples, "ocrwatch_api_request_duration_seconds_count", operation="submit") == 3
    assert sample(
        samples, "ocrwatch_api_request_duration_seconds_sum", operation="submit"
    ) == pytest.approx(5.15)


def test_unknown_families_and_wrong_labels_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.inc("ocrwatch_no_such_total")
    with pytest.raises(ValueError, match="expected labels"):
        metrics.inc("ocrwatch_files_discovered_total", folder="x")
    with pytest.raises(ValueError, match="is a counter"):
        metrics.set("ocrwatch_files_discovered_total", 1, inbox="x")


def test_renders_taken_while_threads_update_are_always_consistent() -> None:
    metrics = Metrics()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            # Two updates that belong together: a scrape must never see one without the other.
            metrics.observe("ocrwatch_api_request_duration_seconds", 0.2, operation="poll")
            metrics.inc("ocrwatch_tasks_submitted_total", inbox="scans")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            samples, _ = parse(metrics.render())
            count = sample(samples, "ocrwatch_api_request_duration_seconds_count", operation="poll")
            submitted = sample(samples, "ocrwatch_tasks_submitted_total", inbox="scans")
            assert count is None or submitted is not None
            assert count is None or submitted is None or abs(count - submitted) <= 4
    finally:
        stop.set()
        for thread in threads:
            thread.join()


# --- a real daemon ---------------------------------------------------------------------------


def listening_port(running: Daemon) -> int:
    def port() -> int | None:
        for event in running.events():
            if event.get("event") == "metrics_listening":
                return int(str(event["port"]))
        return None

    return int(str(wait_for(port)))


def scrape(port: int) -> Samples:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, _ = parse(response.text)
    return samples


def test_the_first_scrape_after_start_has_every_gauge(tmp_path: Path, emulator: Emulator) -> None:
    """What READY follows (``Service.start``) publishes the gauges: no tick is needed first."""
    config = write_config(
        tmp_path, emulator.base_url, metrics={"listen": "127.0.0.1:0", "interval_seconds": 3600}
    )
    with running_service(config, watch=False) as (service, _, _):
        address = service.metrics_address
        assert address is not None
        samples = scrape(address[1])
    assert sample(samples, "ocrwatch_jobs", inbox="scans", state="done") == 0
    assert sample(samples, "ocrwatch_tasks_in_flight", inbox="scans") == 0
    assert sample(samples, "ocrwatch_circuit_breaker_state", state="closed") == 1
    assert sample(samples, "ocrwatch_quota_paused") == 0


def test_a_running_daemon_serves_its_metrics_and_writes_the_textfile(
    tmp_path: Path, emulator: Emulator
) -> None:
    textfile = tmp_path / "ocrwatch.prom"
    config = write_config(
        tmp_path,
        emulator.base_url,
        metrics={"listen": "127.0.0.1:0", "textfile": str(textfile), "interval_seconds": 0.2},
    )
    with daemon(config, tmp_path / "daemon.log") as running:
        port = listening_port(running)
        before = scrape(port)
        assert sample(before, "ocrwatch_files_discovered_total", inbox="scans") == 0
        assert sample(before, "ocrwatch_circuit_breaker_state", state="closed") in (None, 1)

        (tmp_path / "inbox" / "good.png").write_bytes(make_png("counted"))
        (tmp_path / "inbox" / "junk.png").write_bytes(b"not an image at all")

        def settled() -> Samples | None:
            samples = scrape(port)
            completed = sample(samples, "ocrwatch_files_completed_total", inbox="scans")
            failed = sample(
                samples, "ocrwatch_files_failed_total", inbox="scans", error_class="unreadable"
            )
            in_flight = sample(samples, "ocrwatch_tasks_in_flight", inbox="scans")
            return samples if (completed, failed, in_flight) == (1, 1, 0) else None

        samples = wait_for(settled)
        assert isinstance(samples, dict)
        assert sample(samples, "ocrwatch_files_discovered_total", inbox="scans") == 2
        assert sample(samples, "ocrwatch_tasks_submitted_total", inbox="scans") == 1
        assert sample(samples, "ocrwatch_jobs", inbox="scans", state="done") == 1
        assert sample(samples, "ocrwatch_oldest_waiting_seconds", inbox="scans") == 0
        assert sample(samples, "ocrwatch_circuit_breaker_state", state="closed") == 1
        assert sample(samples, "ocrwatch_circuit_breaker_state", state="open") == 0
        for operation in ("submit", "poll"):
            count = sample(
                samples, "ocrwatch_api_request_duration_seconds_count", operation=operation
            )
            inf = sample(
                samples,
                "ocrwatch_api_request_duration_seconds_bucket",
                operation=operation,
                le="+Inf",
            )
            assert count is not None and count >= 1 and inf == count

        def textfile_caught_up() -> bool:
            if not textfile.exists():
                return False
            written, _ = parse(textfile.read_text())
            return sample(written, "ocrwatch_files_completed_total", inbox="scans") == 1

        wait_for(textfile_caught_up)
        assert not list(tmp_path.glob(".ocrwatch.prom*")), "no temporary file left beside it"
        assert requests.get(f"http://127.0.0.1:{port}/nope", timeout=10).status_code == 404


def test_the_daemon_reports_its_own_memory_cpu_and_open_files(
    tmp_path: Path, emulator: Emulator
) -> None:
    textfile = tmp_path / "ocrwatch.prom"
    config = write_config(
        tmp_path,
        emulator.base_url,
        metrics={"listen": "127.0.0.1:0", "textfile": str(textfile), "interval_seconds": 0.2},
    )
    with daemon(config, tmp_path / "daemon.log") as running:
        samples = scrape(listening_port(running))
        fds = len(list(Path(f"/proc/{running.pid}/fd").iterdir()))
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{running.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        wait_for(textfile.exists)
        written, _ = parse(textfile.read_text())
    rss = sample(samples, "process_resident_memory_bytes")
    assert rss is not None and 0.5 < rss / (rss_kib * 1024) < 2.0
    cpu = sample(samples, "process_cpu_seconds_total")
    assert cpu is not None and cpu > 0
    open_fds = sample(samples, "process_open_fds")
    assert open_fds is not None and abs(open_fds - fds) <= 5
    assert (sample(samples, "process_max_fds") or 0) >= open_fds
    # In node-exporter's textfile, bare process_* names would clash with its own.
    assert sample(written, "ocrwatch_process_resident_memory_bytes")
    assert not [name for name, _ in written if name.startswith("process_")]


def test_the_textfile_is_replaced_atomically_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten every few seconds for months: an fsync each time wears flash for nothing."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    target = tmp_path / "ocrwatch.prom"
    target.write_text("old\n")
    write_textfile(target, "new 1\n")
    assert target.read_text() == "new 1\n"
    assert synced == []
    assert [p.name for p in tmp_path.iterdir()] == ["ocrwatch.prom"]
