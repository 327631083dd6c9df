"""Hooks through the real CLI: commands with the facts in their environment, timeouts, webhooks."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from daemon_harness import CLIENT_SECRET, write_config
from daemon_process import daemon, wait_for

from ocrwatch.config import HookConfig
from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.hooks import HookEvent, HookRunner

# A hook that records its environment in <folder>/<event>-<job id>.json.
RECORD = (
    "import json, os, sys, pathlib; "
    "e = dict(os.environ); "
    "pathlib.Path(sys.argv[1], e['OCRWATCH_EVENT'] + '-' + e['OCRWATCH_JOB_ID'] + '.json')"
    ".write_text(json.dumps(e))"
)


def ocrwatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def test_hooks_get_the_facts_in_their_environment_and_never_the_secret(
    tmp_path: Path, emulator: Emulator
) -> None:
    records = tmp_path / "records"
    records.mkdir()
    hook = [sys.executable, "-c", RECORD, str(records)]
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "on_success": "move",
                "done_dir": "done",
                "hooks": {"on_success": hook, "on_failure": hook},
            }
        ],
    )
    (tmp_path / "inbox" / "good.png").write_bytes(make_png("hooked"))
    (tmp_path / "inbox" / "junk.png").write_bytes(b"not an image at all")

    result = ocrwatch(
        "once",
        "-c",
        str(config),
        env={"OCRWATCH_CLIENT_SECRET": CLIENT_SECRET, "UNRELATED_TOKEN": "t0ken"},
    )

    assert result.returncode == 1, result.stderr  # one file failed
    (success,) = (json.loads(p.read_text()) for p in records.glob("success-*.json"))
    (failure,) = (json.loads(p.read_text()) for p in records.glob("failure-*.json"))
    assert success["OCRWATCH_INBOX"] == "scans"
    assert success["OCRWATCH_SOURCE"] == str(tmp_path / "inbox" / "good.png")
    assert success["OCRWATCH_FINAL_PATH"] == str(tmp_path / "done" / "good.png")
    assert success["OCRWATCH_SIDECARS"] == str(tmp_path / "inbox" / "good.png.txt")
    assert Path(success["OCRWATCH_SIDECARS"]).read_text() == "hooked\n"
    assert success["OCRWATCH_TASK_ID"]
    assert success["OCRWATCH_ERROR_CLASS"] == ""
    assert failure["OCRWATCH_SOURCE"] == str(tmp_path / "inbox" / "junk.png")
    assert failure["OCRWATCH_FINAL_PATH"] == str(tmp_path / "errors" / "junk.png")
    assert failure["OCRWATCH_ERROR_CLASS"] == "unreadable"
    assert failure["OCRWATCH_ERROR"]
    assert failure["OCRWATCH_REASON_FILE"] == str(tmp_path / "errors" / "junk.png.error.json")
    for environment in (success, failure):
        assert CLIENT_SECRET not in environment.values()
        assert "OCRWATCH_CLIENT_SECRET" not in environment
        assert "UNRELATED_TOKEN" not in environment
        assert "PATH" in environment


def test_a_hook_past_its_timeout_is_killed_and_logged(tmp_path: Path, emulator: Emulator) -> None:
    pid_file = tmp_path / "hook.pid"
    slow = [
        sys.executable,
        "-c",
        "import os, sys, time, pathlib; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); "
        "time.sleep(120)",
        str(pid_file),
    ]
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "hooks": {"on_success": slow, "timeout_seconds": 0.5},
            }
        ],
    )
    (tmp_path / "inbox" / "a.png").write_bytes(make_png("slow hook"))

    result = ocrwatch("once", "-c", str(config))

    assert result.returncode == 0, result.stderr
    (timed_out,) = events(result.stderr, "hook_timed_out")
    assert timed_out["timeout_seconds"] == 0.5
    pid = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout_seconds=10)


def test_a_hanging_hook_never_holds_up_files_and_dies_with_the_daemon(
    tmp_path: Path, emulator: Emulator
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    hang = [
        sys.executable,
        "-c",
        "import os, sys, time, pathlib; "
        "pathlib.Path(sys.argv[1], str(os.getpid())).touch(); time.sleep(300)",
        str(pids),
    ]
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "hooks": {"on_success": hang, "timeout_seconds": 240},
            }
        ],
    )
    names = [f"f{n}.png" for n in range(5)]  # more files than hook workers
    with daemon(config, tmp_path / "daemon.log") as running:
        for name in names:
            (tmp_path / "inbox" / name).write_bytes(make_png(name))
        # Every sidecar is written while the hooks hang (far within their 240 s timeout).
        wait_for(lambda: all((tmp_path / "inbox" / f"{n}.txt").exists() for n in names))
        wait_for(lambda: len(list(pids.iterdir())) == 2)  # two hook workers, both stuck
        assert running.terminate(timeout_seconds=15) == 0
    for pid_path in pids.iterdir():
        wait_for(lambda p=pid_path: not Path(f"/proc/{p.name}").exists(), timeout_seconds=10)
    log = (tmp_path / "daemon.log").read_text()
    assert "hook_dropped" in log  # the three that never got a worker


class Receiver:
    """A local webhook receiver: answers each POST with the next status, records bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = statuses.pop(0) if statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


def test_the_webhook_is_posted_with_retries_and_its_token_never_logged(
    tmp_path: Path, emulator: Emulator
) -> None:
    with Receiver(statuses=[503]) as receiver:
        config = write_config(
            tmp_path,
            emulator.base_url,
            inboxes=[
                {
                    "name": "scans",
                    "path": "inbox",
                    "error_dir": "errors",
                    "hooks": {"webhook": receiver.url, "timeout_seconds": 5},
                }
            ],
        )
        (tmp_path / "inbox" / "a.png").write_bytes(make_png("posted"))
        result = ocrwatch("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    first, second = receiver.bodies  # a 503, then the retry
    assert first == second
    assert second["event"] == "success"
    assert second["source"] == str(tmp_path / "inbox" / "a.png")
    assert second["sidecars"] == [str(tmp_path / "inbox" / "a.png.txt")]
    assert second["task_id"]
    (sent,) = events(result.stderr, "webhook_sent")
    assert sent["attempt"] == 2 and sent["host"] == "127.0.0.1"
    assert "s3cret" not in result.stderr


def test_submit_never_blocks_when_the_queue_is_full(tmp_path: Path) -> None:
    results: list[tuple[str, str, str]] = []
    gate = tmp_path / "gate"
    wait_for_gate = [
        sys.executable,
        "-c",
        "import sys, time, pathlib\nwhile not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.02)",
        str(gate),
    ]
    hooks = HookConfig(on_success=tuple(wait_for_gate), timeout_seconds=30)
    runner = HookRunner(
        on_result=lambda *result: results.append(result), workers=1, queue_limit=2, environ={}
    )
    try:
        for job_id in range(5):
            event = HookEvent(
                event="success", inbox="scans", job_id=job_id, source=tmp_path, final_path=None
            )
            runner.submit(hooks, event)  # returns at once even though the worker is stuck
        wait_for(lambda: results.count(("scans", "on_success", "dropped")) >= 2)
        assert not runner.is_idle
        gate.touch()
        wait_for(lambda: runner.is_idle)
    finally:
        runner.close(timeout_seconds=5)
    assert (
        results.count(("scans", "on_success", "ok"))
        + results.count(("scans", "on_success", "dropped"))
        == 5
    )
