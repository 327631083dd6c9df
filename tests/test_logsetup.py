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
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from ocrwatch import logsetup
from ocrwatch.systemd import journal_writer

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
    """A stand-in for the journal writer that keeps every entry it is given."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.entries: list[dict[str, str]] = []
        self.refuse = refuse

    def __call__(self, fields: Mapping[str, str], /) -> None:
        if self.refuse:
            raise OSError("journal socket refused the entry")
        self.entries.append(dict(fields))


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
    stream = io.StringIO()
    assert logsetup.configure("info", "journal", stream=stream, journal_send=None) == "json"
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
    assert fields["OCRWATCH_MESSAGE"] == "not an image"
    assert fields["OCRWATCH_PRIORITY"] == "1"


def test_event_keys_never_take_a_field_systemd_gives_a_meaning() -> None:
    # `journalctl -u ocrwatch JOB_ID=3` would also match systemd's own job messages.
    fields = logsetup.journal_fields(
        {"event": "file_done", "job_id": 3, "unit": "x", "errno": 5, "task_id": "t"},
        levelno=logging.INFO,
    )
    assert fields["OCRWATCH_JOB_ID"] == "3"
    assert fields["OCRWATCH_UNIT"] == "x"
    assert fields["OCRWATCH_ERRNO"] == "5"
    assert fields["TASK_ID"] == "t"
    assert not {"JOB_ID", "UNIT", "ERRNO"} & fields.keys()


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
def test_lines_on_the_journal_stream_carry_their_syslog_priority(tmp_path: Path) -> None:
    # JSON on stderr when journald's socket is out of reach: journald still takes the
    # priority from the <N> prefix, so `journalctl -p warning` filters them.
    with (tmp_path / "stderr").open("w+") as stream:
        status = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        assert logsetup.configure("info", "auto", stream=stream, environ=environ) == "json"
        log_like_the_daemon()
        stream.seek(0)
        lines = stream.read().splitlines()
    prefixes = [re.match(r"<(\d)>\{", line) for line in lines if line.startswith("<")]
    assert [m.group(1) for m in prefixes if m] == ["6", "4", "3"]
    assert json.loads(lines[0][3:])["event"] == "task_submitted"


@pytest.mark.usefixtures("restore_logging")
def test_lines_elsewhere_have_no_priority_prefix(tmp_path: Path) -> None:
    stream = io.StringIO()
    logsetup.configure("info", "json", stream=stream, environ={"JOURNAL_STREAM": "1:2"})
    structlog.get_logger("ocrwatch.test").warning("retry_scheduled")
    assert stream.getvalue().startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_entries_reach_a_journal_socket_natively_with_every_field(tmp_path: Path) -> None:
    # A datagram socket in tmp_path stands where journald listens; what arrives is parsed
    # with the protocol's rules, written out independently of the sender.
    address = tmp_path / "journal.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journald:
        journald.bind(str(address))
        writer = journal_writer(address)
        assert writer is not None
        logsetup.configure("info", "journal", stream=io.StringIO(), journal_send=writer)
        log_like_the_daemon()
        entries = [parse_native(journald.recv(1 << 20)) for _ in range(3)]
    logsetup.configure("info", "json", stream=io.StringIO())  # closes the writer's socket
    submitted, retrying, failed = entries
    assert submitted["MESSAGE"] == "task_submitted"
    assert submitted["TASK_ID"] == "t-1"
    assert submitted["PRIORITY"] == "6"
    assert submitted["CODE_LINE"].isdigit()
    assert submitted["CODE_FILE"] == __file__
    assert retrying["PRIORITY"] == "4"
    assert failed["PRIORITY"] == "3"
    assert "ZeroDivisionError" in failed["EXCEPTION"]  # a multi-line value, length-prefixed
    assert "\n" in failed["EXCEPTION"]


def test_no_writer_without_a_listening_journal(tmp_path: Path) -> None:
    assert journal_writer(tmp_path / "missing.socket") is None
    address = tmp_path / "dead.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(address))
    assert address.exists()  # the file stays; nobody reads it
    assert journal_writer(address) is None


def parse_native(data: bytes) -> dict[str, str]:
    """journald's reading of one native entry: NAME=value lines, or NAME, length, bytes."""
    fields: dict[str, str] = {}
    while data:
        line, sep, rest = data.partition(b"\n")
        assert sep, "every field ends with a newline"
        if b"=" in line:
            name, _, value = line.partition(b"=")
            data = rest
        else:
            name = line
            (size,) = struct.unpack("<Q", rest[:8])
            value, data = rest[8 : 8 + size], rest[8 + size :]
            assert data[:1] == b"\n"
            data = data[1:]
        assert re.fullmatch(rb"[A-Z][A-Z0-9_]*", name), name
        fields[name.decode()] = value.decode()
    return fields


@pytest.mark.usefixtures("restore_logging")
def test_entries_reach_the_real_journal_with_their_fields() -> None:
    send = journal_writer()
    journalctl = shutil.which("journalctl")
    if send is None or journalctl is None:
        pytest.skip("needs a running journald (tests/test_real_systemd.py boots one as root)")
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
