"""``ocrwatch once`` progress: plain lines into a pipe, a bar redrawn in place on a terminal."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from daemon_harness import write_config

from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.progress import Progress, ProgressView, bar, describe


def test_the_bar_fills_with_the_finished_share() -> None:
    assert bar(Progress(done=0, failed=0, active=4, in_flight=0), width=4) == "[----]"
    assert bar(Progress(done=1, failed=1, active=2, in_flight=2), width=4) == "[##--]"
    assert bar(Progress(done=0, failed=0, active=0, in_flight=0), width=4) == "[####]"
    assert describe(Progress(done=12, failed=1, active=27, in_flight=3)) == (
        "13/40 files: 12 done, 1 failed, 3 in flight"
    )


def test_a_terminal_gets_redraws_and_a_pipe_gets_throttled_lines() -> None:
    first = Progress(done=0, failed=0, active=2, in_flight=1)
    second = Progress(done=1, failed=0, active=1, in_flight=1)
    final = Progress(done=2, failed=0, active=0, in_flight=0)

    tty = ProgressView(is_tty=True, min_interval_seconds=0.1)
    assert tty.update(first, now=0.0) == f"\r{bar(first)} {describe(first)}\x1b[K"
    assert tty.update(first, now=1.0) is None  # unchanged
    assert tty.update(second, now=1.05) is not None
    assert tty.finish(final).endswith("\x1b[K\n")

    pipe = ProgressView(is_tty=False, line_interval_seconds=1.0)
    assert pipe.update(first, now=0.0) == f"progress: {describe(first)}\n"
    assert pipe.update(second, now=0.5) is None  # too soon after the last line
    assert pipe.update(second, now=1.5) == f"progress: {describe(second)}\n"
    assert pipe.finish(final) == f"progress: {describe(final)}\n"
    assert pipe.finish(final) == ""  # already shown


def drop_three(tmp_path: Path) -> None:
    for n in range(3):
        (tmp_path / "inbox" / f"page{n}.png").write_bytes(make_png(f"page {n}"))


def test_once_into_a_pipe_writes_plain_progress_lines(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    drop_three(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "once", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert lines[-1] == "progress: 3/3 files: 3 done, 0 failed, 0 in flight"
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert result.stderr.rstrip().endswith("3 done, 0 failed")


def run_on_a_terminal(argv: list[str], *, timeout_seconds: float = 120.0) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdout and stderr; return its code and output."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, close_fds=True
        )
    finally:
        os.close(terminal)  # the child holds its own copy; EIO once it exits
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([controller], [], [], 0.5)
            if not readable:
                continue
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: every copy of the terminal side is closed
                break
            if not data:
                break
            chunks.append(data)
        else:
            process.kill()
            raise AssertionError(f"no end of output within {timeout_seconds} s")
        return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_once_on_a_terminal_redraws_a_bar(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    drop_three(tmp_path)

    code, output = run_on_a_terminal([sys.executable, "-m", "ocrwatch", "once", "-c", str(config)])

    assert code == 0, output
    assert "\r[####################] 3/3 files: 3 done, 0 failed, 0 in flight\x1b[K" in output
    assert output.count("\r[") >= 2, "the bar is redrawn in place"
    assert "file_discovered" not in output, "info logs would break the bar on a terminal"
    assert output.rstrip().endswith("3 done, 0 failed")
    assert (tmp_path / "inbox" / "page2.png.txt").read_text() == "page 2\n"


def test_a_log_line_erases_the_bar_and_the_bar_comes_back_below_it() -> None:
    view = ProgressView(is_tty=True)
    assert view.clear() == "" and view.redraw() == ""  # no bar yet: nothing to erase
    shown = view.update(Progress(done=1, failed=0, active=1, in_flight=1), now=0.0)
    assert view.clear() == "\r\x1b[K" and view.redraw() == shown
    view.finish(Progress(done=2, failed=0, active=0, in_flight=0))
    assert view.clear() == "" and view.redraw() == ""  # the final bar has its own line
    assert ProgressView(is_tty=False).clear() == ""  # plain lines never need erasing


def visible_lines(output: str) -> list[str]:
    """What a terminal shows: each line as the text after its last carriage return."""
    lines = output.replace("\r\n", "\n").split("\n")  # the terminal's own newline mapping
    return [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.rsplit("\r", 1)[-1]) for line in lines]


def test_log_lines_on_a_terminal_never_share_a_line_with_the_bar(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    drop_three(tmp_path)
    argv = [sys.executable, "-m", "ocrwatch", "--log-level", "info", "once", "-c", str(config)]

    code, output = run_on_a_terminal(argv)

    assert code == 0, output
    lines = visible_lines(output)
    logged = [line for line in lines if "file_discovered" in line or "task_submitted" in line]
    assert logged, output  # info lines were asked for and shown
    glued = [line for line in lines if "files:" in line and "[info" in line]
    assert not glued, glued
    assert lines[-3].startswith("[####################] 3/3 files"), lines[-3:]


def test_an_interrupted_once_says_which_files_are_unfinished(
    tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    emulator = make_emulator(processing_seconds=(30.0, 30.0), slots=8)
    config = write_config(tmp_path, emulator.base_url)
    drop_three(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "once", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(emulator.stats().submits.values()) < 3:
            assert time.monotonic() < deadline, "the three files were never submitted"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert "interrupted: 3 file(s) unfinished" in stderr
    assert "picks them up" in stderr
    for n in range(3):
        assert f"page{n}.png (submitted)" in stderr
