"""Logging as it comes out: JSON lines and the console for real (a subprocess's stderr, a pty),
journal entries through a recording ``send`` function, and the real journal where there is one.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ocrwatch import logsetup

# What a daemon logs: a structlog event with fields, a filtered debug event, a library's
# record through plain logging, and an exception.
SCRIPT = """
import logging, sys
from pathlib import Path
import structlog
from ocrwatch import logsetup
output = logsetup.configure("info", sys.argv[1])
print(output, flush=True)
log = structlog.get_logger("ocrwatch.test")
log.info("task_submitted", task_id="t-1", path=Path("/srv/in/a.png"), attempt=2)
log.debug("task_polled", task_id="t-1")
logging.getLogger("urllib3.connectionpool").warning("Retrying %s", "GET /x")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("file_moved_to_error", reason="boom")
"""


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"JOURNAL_STREAM", "NO_COLOR"}}


def run_script(fmt: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_json_lines_carry_every_field_as_a_key(fmt: str) -> None:
    result = run_script(fmt)
    assert result.stdout.strip() == "json"  # auto: stderr is a pipe, not a terminal
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["event"] for r in records] == [
        "task_submitted",
        "Retrying GET /x",
        "file_moved_to_error",
    ]
    submitted, retrying, failed = records
    assert submitted["task_id"] == "t-1"
    assert submitted["path"] == "/srv/in/a.png"
    assert submitted["attempt"] == 2
    assert submitted["level"] == "info"
    assert submitted["timestamp"].endswith("Z")
    assert retrying["level"] == "warning"
    assert failed["level"] == "error"
    assert failed["reason"] == "boom"
    assert "ZeroDivisionError" in failed["exception"]


def test_console_output_is_readable_on_a_terminal() -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, "auto"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            text=True,
        )
        os.close(terminal)
        terminal = -1
        stdout, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        written = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed its end and everything has been read
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert stdout.strip() == "console"
    text = re.sub(r"\x1b\[[0-9;]*m", "", written.decode("utf-8", errors="replace"))
    assert re.search(r"task_submitted\s+.*attempt=2.*task_id=t-1", text), text
    assert "task_polled" not in text
    assert "ZeroDivisionError" in text


# ------------------------------------------------------------------------- in-process


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure() changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    urllib3_level = logging.getLogger("urllib3").level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(urllib3_level)
    structlog.configure(**config)


class RecordingJournal:
    """A stand-in for ``systemd.journal.send`` that keeps every entry it is given."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.entries: list[dict[str, str]] = []
        self.refuse = refuse

    def __call__(self, **fields: str) -> None:
        if self.refuse:
            raise OSError("journal socket refused the entry")
        self.entries.append(fields)


def log_like_the_daemon() -> None:
    log = structlog.get_logger("ocrwatch.test")
    log.info("task_submitted", task_id="t-1", path=Path("/srv/in/a.png"), attempt=2)
    log.debug("task_polled", task_id="t-1")
    logging.getLogger("urllib3.connectionpool").warning("Retrying %s", "GET /x")
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("file_moved_to_error", reason="boom")


@pytest.mark.usefixtures("restore_logging")
def test_journal_entries_carry_the_event_keys_as_fields() -> None:
    journal = RecordingJournal()
    output = logsetup.configure("info", "journal", stream=io.StringIO(), journal_send=journal)
    assert output == "journal"
    log_like_the_daemon()
    submitted, retrying, failed = journal.entries
    assert {k: v for k, v in submitted.items() if not k.startswith("CODE_")} == {
        "MESSAGE": "task_submitted",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "ocrwatch",
        "TASK_ID": "t-1",
        "PATH": "/srv/in/a.png",
        "ATTEMPT": "2",
        "LOGGER": "ocrwatch.test",
    }
    assert submitted["CODE_FILE"] == __file__  # where the event was logged, not structlog
    assert submitted["CODE_FUNC"] == "log_like_the_daemon"
    assert retrying["MESSAGE"] == "Retrying GET /x"
    assert retrying["PRIORITY"] == "4"
    assert retrying["LOGGER"] == "urllib3.connectionpool"
    assert failed["PRIORITY"] == "3"
    assert failed["REASON"] == "boom"
    assert "ZeroDivisionError" in failed["EXCEPTION"]


@pytest.mark.usefixtures("restore_logging")
def test_an_entry_the_journal_refuses_is_written_as_json_instead() -> None:
    stream = io.StringIO()
    logsetup.configure("info", "journal", stream=stream, journal_send=RecordingJournal(refuse=True))
    structlog.get_logger("ocrwatch.test").warning("retry_scheduled", task_id="t-2")
    record = json.loads(stream.getvalue())
    assert (record["event"], record["task_id"], record["level"]) == (
        "retry_scheduled",
        "t-2",
        "warning",
    )


@pytest.mark.usefixtures("restore_logging")
def test_auto_picks_the_journal_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    journal = RecordingJournal()
    with (tmp_path / "stderr").open("w") as stream, (tmp_path / "other").open("w") as other:
        mine, elsewhere = os.fstat(stream.fileno()), os.fstat(other.fileno())
        cases = {
            f"{mine.st_dev}:{mine.st_ino}": "journal",
            f"{elsewhere.st_dev}:{elsewhere.st_ino}": "json",  # inherited by a child
            "": "json",
            "garbage": "json",
        }
        for journal_stream, expected in cases.items():
            environ = {"JOURNAL_STREAM": journal_stream} if journal_stream else {}
            output = logsetup.configure(
                "info", "auto", stream=stream, environ=environ, journal_send=journal
            )
            assert output == expected, journal_stream


@pytest.mark.usefixtures("restore_logging")
def test_journal_asked_for_but_unreachable_falls_back_to_json() -> None:
    if logsetup.journal_sender() is not None:
        pytest.skip("systemd-python is installed and journald listens here")
    stream = io.StringIO()
    assert logsetup.configure("info", "journal", stream=stream) == "json"
    record = json.loads(stream.getvalue())
    assert record["event"] == "journal_unavailable"
    assert record["using"] == "json"


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("task_id", "TASK_ID"),
        ("http.status", "HTTP_STATUS"),
        ("_private", "PRIVATE"),  # a leading _ is for fields journald sets itself
        ("2nd", "F_2ND"),
        ("Ünïcode", "N_CODE"),
        ("x" * 80, "X" * 64),
    ],
)
def test_journal_field_names(key: str, field: str) -> None:
    name = logsetup.journal_field_name(key)
    assert name == field
    assert re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", name)


def test_event_keys_never_overwrite_the_fixed_fields() -> None:
    fields = logsetup.journal_fields(
        {"event": "file_ignored", "message": "not an image", "priority": 1},
        levelno=logging.INFO,
    )
    assert fields["MESSAGE"] == "file_ignored"
    assert fields["PRIORITY"] == "6"
    assert fields["EVENT_MESSAGE"] == "not an image"
    assert fields["EVENT_PRIORITY"] == "1"


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_syslog_priorities(level: int, priority: int) -> None:
    assert logsetup.syslog_priority(level) == priority


@pytest.mark.parametrize(
    ("name", "expected"),
    [("auto", "auto"), ("console", "console"), ("json", "json"), ("journal", "journal")],
)
def test_log_format_names(name: str, expected: str) -> None:
    assert logsetup.log_format(name) == expected


@pytest.mark.usefixtures("restore_logging")
def test_entries_reach_the_real_journal_with_their_fields() -> None:
    send = logsetup.journal_sender()
    journalctl = shutil.which("journalctl")
    if send is None or journalctl is None:
        pytest.skip("needs systemd-python (pip install .[systemd]) and a running journald")
    marker = uuid.uuid4().hex
    logsetup.configure("info", "journal", stream=io.StringIO(), journal_send=send)
    structlog.get_logger("ocrwatch.test").info("task_completed", test_marker=marker)
    deadline = time.monotonic() + 10.0
    entries: list[dict[str, Any]] = []
    while not entries:
        assert time.monotonic() < deadline, "the entry never showed up in the journal"
        found = subprocess.run(
            [journalctl, "--output=json", "--no-pager", f"TEST_MARKER={marker}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        entries = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
        time.sleep(0.1)
    assert entries[0]["MESSAGE"] == "task_completed"
    assert entries[0]["SYSLOG_IDENTIFIER"] == "ocrwatch"
    assert entries[0]["PRIORITY"] == "6"
