"""The account's limits: a plan or quota that refuses calls pauses work; 413 is its own class.

Runs against the emulator over real HTTP (``Faults.quota_calls``, ``plan_refused``,
``EmulatorConfig.max_upload_bytes``), ``ocrwatch status`` and ``doctor`` as real processes,
and the pure ``QuotaPause`` table-driven.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from daemon_harness import CLIENT_ID, CLIENT_SECRET, run_until, running_service, write_config
from PIL import Image, PngImagePlugin

from ocrwatch.aspose import OcrClient
from ocrwatch.config import load_config
from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.cli import add_arguments, build_config
from ocrwatch.emulator.samples import make_png
from ocrwatch.errors import PayloadTooLarge, QuotaExhausted
from ocrwatch.explain import explain
from ocrwatch.model import AccountPause, Credentials, JobState, Mode, RecognitionSettings
from ocrwatch.quota import QUOTA_RETRY_AFTER_CAP_SECONDS, QuotaPause
from ocrwatch.store import MIGRATIONS, Store

MakeEmulator = Callable[..., Emulator]
CREDENTIALS = Credentials(CLIENT_ID, CLIENT_SECRET)


def ocrwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def error_files(tmp_path: Path) -> list[str]:
    errors = tmp_path / "errors"
    return sorted(p.name for p in errors.iterdir()) if errors.exists() else []


def noise_png(size: int) -> bytes:
    """A PNG that does not compress: about 3 * size * size bytes."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (size, size), rng.randbytes(3 * size * size))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- pure


def test_a_refusal_pauses_and_only_one_probe_goes_at_each_probe_time() -> None:
    pause = QuotaPause(60.0)
    assert pause.allows_submit(0.0) and not pause.is_paused
    pause = pause.on_refused(100.0, 1, reason="quota", http_status=402, is_poll=False)
    assert pause.record is not None and pause.record.probe_at == 160.0
    assert not pause.allows_submit(159.9)
    assert pause.allows_poll(159.9), "polls go on until one is refused"
    assert pause.allows_submit(160.0)
    pause = pause.on_submit(2)  # the probe
    assert not pause.allows_submit(161.0), "one probe at a time"
    pause = pause.on_refused(162.0, 2, reason="quota", http_status=402, is_poll=False)
    assert pause.record is not None
    assert pause.record.since == 100.0, "the pause began at the first refusal"
    assert pause.record.probe_at == 222.0
    pause = pause.on_submit(3).on_finished(3)  # the probe ended without a verdict
    assert pause.allows_submit(222.0) and pause.is_paused


def test_a_refused_poll_holds_polls_too_and_one_request_probes_for_both() -> None:
    pause = QuotaPause(60.0).on_refused(0.0, 1, reason="q", http_status=402, is_poll=True)
    assert not pause.allows_poll(59.0) and not pause.allows_submit(59.0)
    assert pause.allows_poll(60.0) and pause.allows_submit(60.0)
    probing = pause.on_poll(5)
    assert not probing.allows_submit(61.0) and not probing.allows_poll(61.0)
    resumed = probing.on_accepted(5)
    assert not resumed.is_paused and resumed.allows_poll(61.0) and resumed.allows_submit(61.0)


def test_retry_after_longer_than_the_probe_interval_wins() -> None:
    pause = QuotaPause(60.0).on_refused(
        0.0, 1, reason="q", http_status=402, is_poll=False, retry_after_seconds=90
    )
    assert pause.record is not None and pause.record.probe_at == 90.0


def test_a_retry_after_of_weeks_is_capped_so_a_top_up_is_seen_within_the_hour() -> None:
    # A quota's Retry-After may name its renewal date; a top-up before then must not wait.
    month = 30 * 86400.0
    pause = QuotaPause(60.0).on_refused(
        0.0, 1, reason="q", http_status=402, is_poll=False, retry_after_seconds=month
    )
    assert pause.record is not None and pause.record.probe_at == QUOTA_RETRY_AFTER_CAP_SECONDS
    longer = QuotaPause(2 * QUOTA_RETRY_AFTER_CAP_SECONDS).on_refused(
        0.0, 1, reason="q", http_status=402, is_poll=False, retry_after_seconds=month
    )
    assert longer.record is not None
    assert longer.record.probe_at == 2 * QUOTA_RETRY_AFTER_CAP_SECONDS, "the configured interval"


def test_a_403_for_one_file_after_two_pauses_ended_by_other_files_is_the_files() -> None:
    pause = QuotaPause(60.0).on_refused(0.0, 1, reason="q", http_status=403, is_poll=False)
    assert not pause.blames_the_file(1, 403), "the first time it is the account, as far as known"
    once = pause.on_submit(2).on_accepted(2)  # the probe, another file, is accepted
    assert not once.is_paused
    assert not once.blames_the_file(1, 403), "a 403 quota may have run out again just now"
    paused = once.on_refused(70.0, 1, reason="q", http_status=403, is_poll=False)
    resumed = paused.on_submit(4).on_accepted(4)  # a second pause ended by another file
    assert resumed.blames_the_file(1, 403)
    assert not resumed.blames_the_file(1, 402), "a 402 is always the account's"
    assert not resumed.blames_the_file(3, 403), "never refused before"
    assert not resumed.on_accepted(1).blames_the_file(1, 403), "accepted after all"
    assert not resumed.forget(1).blames_the_file(1, 403)
    # Refused again within one pause, nothing accepted between: still the account.
    again = pause.on_submit(1).on_refused(60.0, 1, reason="q", http_status=403, is_poll=False)
    assert not again.blames_the_file(1, 403)


def test_only_the_probe_being_accepted_ends_the_pause() -> None:
    pause = QuotaPause(60.0).on_refused(0.0, 1, reason="q", http_status=402, is_poll=False)
    assert pause.on_accepted(7).is_paused, "sent before the refusal, answered after it"
    assert pause.on_poll(9).on_accepted(9).is_paused, "a poll while only submissions are held"
    resumed = pause.on_submit(8).on_accepted(8)
    assert resumed.allows_submit(0.0) and resumed.record is None


def test_a_one_shot_run_moves_the_probe_forward_never_back() -> None:
    pause = QuotaPause(60.0).on_refused(0.0, 1, reason="q", http_status=402, is_poll=False)
    assert not pause.allows_submit(10.0)
    probing = pause.probe_now(10.0)
    assert probing.allows_submit(10.0) and probing.record is not None
    assert probing.record.since == 0.0 and probing.record.reason == "q"
    assert pause.probe_now(70.0) is pause, "a probe already due stays as it is"
    assert QuotaPause(60.0).probe_now(10.0).record is None


# ----------------------------------------------------------------------------- the client


def _submit(emulator: Emulator, data: bytes | None = None) -> str:
    with OcrClient(emulator.base_url, credentials=CREDENTIALS) as client:
        return client.submit(Mode.IMAGE, data or make_png("quota"), RecognitionSettings())


def test_an_exhausted_quota_is_its_own_error_and_a_new_quota_period_accepts_again(
    make_emulator: MakeEmulator,
) -> None:
    emulator = make_emulator(faults=Faults(quota_calls=2))
    _submit(emulator)
    _submit(emulator)
    with pytest.raises(QuotaExhausted) as refused:
        _submit(emulator)
    assert refused.value.status_code == 402
    assert emulator.stats().faults["quota_exhausted"] == 1
    emulator.set_faults(Faults(quota_calls=5))  # a top-up starts a new period
    assert _submit(emulator)


@pytest.mark.parametrize(
    "faults", [Faults(plan_refused=True), Faults(quota_calls=0, quota_status=403)]
)
def test_a_403_gets_one_fresh_token_and_then_is_the_account_speaking(
    make_emulator: MakeEmulator, faults: Faults
) -> None:
    emulator = make_emulator(faults=faults)
    with pytest.raises(QuotaExhausted) as refused:
        _submit(emulator)
    assert refused.value.status_code == 403
    stats = emulator.stats()
    assert stats.token_requests == 2, "the Java SDK's reading of 403 (expired token) was tried"
    assert sum(stats.faults.values()) == 2


def test_a_413_names_the_file_size(make_emulator: MakeEmulator) -> None:
    big = noise_png(120)
    emulator = make_emulator(max_upload_bytes=len(big))
    with pytest.raises(PayloadTooLarge) as refused:
        _submit(emulator, big)
    assert refused.value.size_bytes == len(big)
    assert f"{len(big):,} bytes" in str(refused.value)
    assert emulator.stats().total_submits == 0


def test_the_emulator_flags_build_the_account_and_limit_settings() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--accept-any-credentials",
            "--quota-calls", "150", "--quota-status", "403", "--plan-refused",
            "--max-upload-bytes", "1000", "--forbidden-content", "no-go",
            "--result-type-name", "JSON=Text", "--json-object", "--pages-apart",
        ]
    )  # fmt: skip
    config = build_config(args)
    assert (config.faults.quota_calls, config.faults.quota_status) == (150, 403)
    assert config.faults.plan_refused and config.max_upload_bytes == 1000
    assert config.forbidden_content == b"no-go"
    assert config.result_shape.type_name(next(iter(dict(config.result_shape.type_names)))) == "Text"
    assert config.result_shape.json_object and config.result_shape.pages_apart


# ----------------------------------------------------------------------------- the daemon


def _status(config: Path) -> dict[str, Any]:
    result = ocrwatch("status", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)[0]
    return report


def test_a_backlog_against_an_exhausted_quota_waits_in_the_inbox_and_finishes_after_a_top_up(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(faults=Faults(quota_calls=6))
    textfile = tmp_path / "metrics" / "ocrwatch.prom"
    textfile.parent.mkdir()
    config = write_config(
        tmp_path,
        emulator.base_url,
        # One attempt only: a refusal that consumed an attempt would fail its file.
        service={"quota_probe_seconds": 0.3, "max_attempts": 1, "upload_concurrency": 2},
        metrics={"textfile": str(textfile), "interval_seconds": 3600},
    )
    names = [f"q{n:02d}.png" for n in range(12)]
    for name in names:
        (tmp_path / "inbox" / name).write_bytes(make_png(f"backlog {name}"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: "quota refuses calls" in service.status_line())
        # Several probes come and are refused; nothing fails meanwhile.
        run_until(service, lambda: emulator.stats().faults.get("quota_exhausted", 0) >= 6)
        assert error_files(tmp_path) == []
        counts = store.count_by_state()
        assert counts.get(JobState.FAILED, 0) == 0
        waiting = [name for name in names if not (tmp_path / "inbox" / f"{name}.txt").exists()]
        assert waiting, "the quota ran out before the backlog was done"
        assert all((tmp_path / "inbox" / name).exists() for name in names)

        status = _status(config)
        paused = status["submissions_paused"]
        assert paused is not None and paused["http_status"] == 402
        assert "quota" in paused["reason"]
        doctor = ocrwatch("doctor", "-c", str(config), "--json")
        assert doctor.returncode == 1
        findings = json.loads(doctor.stdout)
        problems = [f["text"] for f in findings if f["level"] == "problem"]
        assert any("paused submissions" in text for text in problems), problems
        assert any("account is refused" in text for text in problems), problems
        service.publish_metrics(service.now())
        assert "ocrwatch_quota_paused 1" in textfile.read_text().splitlines()

        emulator.set_faults(Faults())  # the quota is topped up
        run_until(service, service.is_idle, timeout_seconds=60)
        assert store.count_by_state().get(JobState.DONE) == len(names)
        service.publish_metrics(service.now())
        assert "ocrwatch_quota_paused 0" in textfile.read_text().splitlines()
    assert error_files(tmp_path) == []
    for name in names:
        assert (tmp_path / "inbox" / f"{name}.txt").read_text() == f"backlog {name}\n"
    assert _status(config)["submissions_paused"] is None


def test_the_pause_survives_a_restart_and_no_upload_goes_before_its_probe(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(faults=Faults(plan_refused=True))
    config = write_config(tmp_path, emulator.base_url, service={"quota_probe_seconds": 3600})
    (tmp_path / "inbox" / "plan.png").write_bytes(make_png("plan"))
    with running_service(config) as (service, _, _):
        run_until(service, lambda: "quota refuses calls" in service.status_line())
    refusals = emulator.stats().faults["plan_refused"]
    with running_service(config) as (service, store, _):
        assert "quota refuses calls" in service.status_line()
        for _ in range(20):
            service.tick(service.now())
        assert emulator.stats().faults["plan_refused"] == refusals
        assert [job.state for job in store.jobs()] == [JobState.QUEUED]
    assert error_files(tmp_path) == []


def test_a_reload_after_a_top_up_probes_at_once_instead_of_at_the_probe_time(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # `systemctl reload` is how an operator says "the plan changed": an hour is too long.
    emulator = make_emulator(faults=Faults(plan_refused=True))
    config = write_config(tmp_path, emulator.base_url, service={"quota_probe_seconds": 3600})
    (tmp_path / "inbox" / "plan.png").write_bytes(make_png("plan"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: "quota refuses calls" in service.status_line())
        emulator.set_faults(Faults())  # the plan now includes the API
        assert service.reload(service.now())
        run_until(service, service.is_idle)
        assert store.account_pause() is None
    assert (tmp_path / "inbox" / "plan.png.txt").read_text() == "plan\n"


def test_a_reload_probes_a_held_poll_at_once_too(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # The one call allowed submits the file; its poll is refused, so polls are held until
    # the probe time an hour away. Nothing is queued: only the held poll can be the probe.
    emulator = make_emulator(faults=Faults(quota_calls=1))
    config = write_config(tmp_path, emulator.base_url, service={"quota_probe_seconds": 3600})
    (tmp_path / "inbox" / "held.png").write_bytes(make_png("held"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: [job.http_status for job in store.jobs()] == [402])
        (job,) = store.jobs()
        assert job.state is JobState.SUBMITTED
        assert job.next_attempt_at is not None and job.next_attempt_at > service.now() + 3000
        emulator.set_faults(Faults())
        assert service.reload(service.now())
        run_until(service, service.is_idle)
    assert (tmp_path / "inbox" / "held.png.txt").read_text() == "held\n"


def test_a_due_probe_with_no_file_to_send_does_not_spin_the_loop(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # Paused, the probe time has passed, and the inbox was emptied meanwhile: nothing can be
    # the probe, so the loop must sleep as usual instead of waking again at once (a core at
    # 100 % on the NAS until a file arrives).
    emulator = make_emulator()
    config = write_config(tmp_path, emulator.base_url)
    with Store.open(tmp_path / "state" / "state.db") as store:
        store.set_account_pause(
            AccountPause(reason="quota", http_status=402, since=0.0, probe_at=1.0)
        )
    with running_service(config, watch=False) as (service, store, _):
        now = service.now()
        service.tick(now)
        assert store.account_pause() is not None and not store.jobs()
        assert service._dispatcher.next_due_at(now, horizon=now + 1.0) == now + 1.0


def test_explain_says_a_waiting_file_is_held_by_the_account(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # "Why is my scan not done?" must be answered by the pause, for every file it holds.
    emulator = make_emulator(faults=Faults(plan_refused=True))
    config = write_config(
        tmp_path,
        emulator.base_url,
        service={"quota_probe_seconds": 3600, "upload_concurrency": 1},
    )
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "inbox" / name).write_bytes(make_png(name))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: "quota refuses calls" in service.status_line())
        run_until(service, lambda: service.calls_running == 0)
        assert {job.state for job in store.jobs()} == {JobState.QUEUED}
    loaded = load_config(config, environ={})
    for name in ("a.png", "b.png", "c.png"):
        verdict = explain(loaded, tmp_path / "inbox" / name).verdict
        assert verdict.startswith("in progress: queued"), verdict
        assert "held: the account's plan or quota refuses calls (HTTP 403)" in verdict, verdict


def test_a_403_that_is_one_files_fails_that_file_and_the_backlog_goes_on(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # A gateway rule refusing one file's content: refused, the account looks refused, so
    # everything pauses; once other files ended two such pauses, the same 403 is the file's.
    marker = b"content-a-rule-refuses"
    emulator = make_emulator(forbidden_content=marker)
    config = write_config(tmp_path, emulator.base_url, service={"quota_probe_seconds": 0.3})
    bad = Image.new("RGB", (200, 60), "white")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker.decode())  # tEXt is stored as it is
    bad.save(tmp_path / "inbox" / "bad.png", pnginfo=info)
    goods = [f"good{n}.png" for n in range(4)]
    inbox = tmp_path / "inbox"

    def paused_with_only_bad_left() -> bool:
        return "quota refuses calls" in service.status_line() and all(
            (inbox / f"{name}.txt").exists() for name in goods if (inbox / name).exists()
        )

    with running_service(config) as (service, store, _):
        for batch in (goods[:2], goods[2:]):  # each ends one pause (the bad file alone cannot)
            run_until(service, paused_with_only_bad_left)
            for name in batch:
                (inbox / name).write_bytes(make_png(f"text {name}"))
        run_until(service, service.is_idle)
        assert store.account_pause() is None
    reason = json.loads((tmp_path / "errors" / "bad.png.error.json").read_text())
    assert (reason["class"], reason["http_status"]) == ("rejected", 403)
    assert "only this file" in reason["message"]
    for name in goods:
        assert (tmp_path / "inbox" / f"{name}.txt").read_text() == f"text {name}\n"


def test_a_file_too_large_for_the_service_fails_as_too_large_with_its_size(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    big = noise_png(150)
    emulator = make_emulator(max_upload_bytes=len(big))
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "inbox" / "big.png").write_bytes(big)
    (tmp_path / "inbox" / "small.png").write_bytes(make_png("small"))
    with running_service(config) as (service, _, _):
        run_until(service, service.is_idle)
    assert (tmp_path / "inbox" / "small.png.txt").read_text() == "small\n"
    reason = json.loads((tmp_path / "errors" / "big.png.error.json").read_text())
    assert reason["class"] == "too_large"
    assert reason["http_status"] == 413
    assert reason["size_bytes"] == len(big)
    assert f"{len(big):,} bytes" in reason["message"]


# ----------------------------------------------------------------------------- the store


def test_the_pause_is_kept_in_the_store_and_a_version_1_store_is_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)  # a state file written before the pause existed
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    pause = AccountPause(reason="quota", http_status=402, since=10.0, probe_at=310.0)
    with Store.open(path) as store:
        assert store.account_pause() is None
        store.set_account_pause(pause)
        store.set_account_pause(pause)  # replacing it keeps one row
    with Store.open(path, readonly=True) as reader:
        assert reader.account_pause() == pause
    with Store.open(path) as store:
        store.set_account_pause(None)
        assert store.account_pause() is None


def test_ocrwatch_serve_runs_out_of_quota_after_the_calls_it_was_given() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "serve", "--port", "0",
         "--accept-any-credentials", "--quota-calls", "1", "--max-upload-bytes", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        form = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
        token = requests.post(f"{base_url}/connect/token", data=form, timeout=10).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url = f"{base_url}/v5.0/ocr/RecognizeImage"
        body = {"image": base64.b64encode(make_png("served")).decode(), "settings": {}}
        assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 200
        refused = requests.post(url, json=body, headers=headers, timeout=10)
        assert refused.status_code == 402
        assert refused.json()["status"] == 402
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_while_everything_is_refused_each_probe_time_costs_one_call(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    """On a driven clock: nothing is sent between probe times, and one call at each."""
    emulator = make_emulator(faults=Faults(quota_calls=3))
    now = [1_000_000.0]
    config = write_config(
        tmp_path, emulator.base_url, service={"quota_probe_seconds": 60, "upload_concurrency": 1}
    )
    for n in range(4):
        (tmp_path / "inbox" / f"c{n}.png").write_bytes(make_png(f"clocked {n}"))

    def refusals() -> int:
        return emulator.stats().faults.get("quota_exhausted", 0)

    with running_service(config, watch=False, clock=lambda: now[0]) as (service, store, _):

        def settle(*, step_seconds: float, until: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 30
            while not until():
                assert time.monotonic() < deadline, service.status_line()
                service.tick(now[0])
                now[0] += step_seconds
                time.sleep(0.005)

        # Until a poll was refused too (a submitted task exists) and nothing is in flight.
        settle(
            step_seconds=0.05,
            until=lambda: (
                store.count_by_state().get(JobState.SUBMITTED, 0) > 0
                and refusals() >= 2
                and _nothing_running(service)
            ),
        )
        pause = store.account_pause()
        assert pause is not None
        before = refusals()
        requests = _requests(emulator)
        for _ in range(30):  # before the probe time: not one request
            service.tick(now[0])
            time.sleep(0.005)
        settle(step_seconds=0.0, until=lambda: _nothing_running(service))  # none still out
        assert (refusals(), _requests(emulator)) == (before, requests)
        for probe in (1, 2):
            now[0] = pause.probe_at
            settle(step_seconds=0.0, until=lambda n=before + probe: refusals() >= n)
            settle(step_seconds=0.0, until=lambda: _nothing_running(service))
            assert refusals() == before + probe, "one call per probe time"
            pause = store.account_pause()
            assert pause is not None
        assert error_files(tmp_path) == []
        emulator.set_faults(Faults())
        now[0] = pause.probe_at
        settle(step_seconds=0.05, until=service.is_idle)
        assert store.count_by_state().get(JobState.DONE) == 4


def _requests(emulator: Emulator) -> int:
    """Every request the emulator answered (tokens, submits, polls, refusals)."""
    stats = emulator.stats()
    calls = stats.token_requests + stats.total_submits + stats.fetches + stats.status_probes
    return calls + sum(stats.faults.values())


def _nothing_running(service: Any) -> bool:
    """No upload or poll is out: only a wait condition, the assertions count the server's."""
    return service._dispatcher.busy_count == 0


def test_once_against_a_refusing_account_exits_75_leaving_the_files_and_the_next_once_finishes(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # A one-shot run must not wait for a top-up: it says why it stops and keeps every file.
    emulator = make_emulator(faults=Faults(quota_calls=0))
    config = write_config(tmp_path, emulator.base_url, service={"quota_probe_seconds": 3600})
    names = [f"once{n}.png" for n in range(3)]
    for name in names:
        (tmp_path / "inbox" / name).write_bytes(make_png(f"text {name}"))
    refused = ocrwatch("once", "-c", str(config))  # times out if it waits for a top-up
    assert refused.returncode == 75, refused.stderr
    assert "HTTP 402" in refused.stderr and "3 file(s) wait in the inbox" in refused.stderr
    assert error_files(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == names
    assert _status(config)["submissions_paused"]["http_status"] == 402

    # The quota is topped up: the next `once` probes at once (its probe time is an hour
    # away), instead of exiting on the pause it finds in the state file.
    emulator.set_faults(Faults())
    finished = ocrwatch("once", "-c", str(config))
    assert finished.returncode == 0, finished.stderr
    for name in names:
        assert (tmp_path / "inbox" / f"{name}.txt").read_text() == f"text {name}\n"
    assert _status(config)["submissions_paused"] is None
