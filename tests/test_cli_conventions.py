"""What operators expect of a Unix command, checked on the real ``ocrwatch`` process.

The config search path, ``NO_COLOR`` on a terminal, and exit status 70 (EX_SOFTWARE) with one
log line when a bug escapes.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import write_config

from ocrwatch.errors import ExitCode

SYSTEM_CONFIG = Path("/etc/ocrwatch/config.yaml")  # the search path's last place


def ocrwatch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )


_CHOSEN_BY_THE_TEST = {"OCRWATCH_CONFIG", "NO_COLOR", "FORCE_COLOR", "STATE_DIRECTORY"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CHOSEN_BY_THE_TEST}
    env.update(extra)
    return env


def on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run ocrwatch with stdout and stderr on a pseudo-terminal; its exit status and output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=60), bytes(output)


# ------------------------------------------------------------------------- exit status 70


def test_an_uncaught_bug_exits_70_with_one_log_line_and_no_traceback(tmp_path: Path) -> None:
    # A crash nothing anticipates: PyYAML's composer recurses once per level of nesting, so a
    # deeply nested value raises RecursionError, which is no YAMLError.
    config = tmp_path / "deep.yaml"
    config.write_text("inboxes: " + "[" * 5000 + "]" * 5000 + "\n")
    result = ocrwatch("--log-format", "json", "check", "-c", str(config), env=clean_env())
    assert result.returncode == ExitCode.SOFTWARE == 70
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "crashed" and event["level"] == "critical"
    assert event["error_type"] == "RecursionError" and event["where"]


# ------------------------------------------------------------------------- NO_COLOR


def test_no_color_turns_off_the_colours_of_the_console_log(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", credentials=False)
    args = ("--log-format", "console", "--log-level", "debug", "check", "-c", str(config))
    status, coloured = on_a_terminal(*args, env=clean_env(TERM="xterm"))
    assert status == 0 and b"config_loaded" in coloured
    assert b"\x1b[" in coloured  # the control: on a terminal the log is coloured
    status, plain = on_a_terminal(*args, env=clean_env(TERM="xterm", NO_COLOR="1"))
    assert status == 0 and b"config_loaded" in plain
    assert b"\x1b[" not in plain


# ------------------------------------------------------------------------- config search path


def test_without_c_the_config_comes_from_ocrwatch_config_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", credentials=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = ocrwatch("status", env=clean_env(OCRWATCH_CONFIG=str(config)), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert f"using {config} (from $OCRWATCH_CONFIG)" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("check",), ("status",), ("status", "--json"), ("explain", "x.png"), ("doctor", "--offline")],
)
def test_one_shot_commands_say_once_which_config_and_log_no_config_loaded(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", credentials=False)
    result = ocrwatch(*command, env=clean_env(OCRWATCH_CONFIG=str(config)), cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr.count(f"using {config}") == 1, result.stderr
    assert "config_loaded" not in result.stderr


@pytest.mark.skipif(SYSTEM_CONFIG.exists(), reason=f"{SYSTEM_CONFIG} exists on this machine")
def test_without_any_config_the_error_lists_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("inboxes: []\n")  # the old default is not looked at
    result = ocrwatch("status", env=clean_env(), cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG
    assert "--config FILE (not given)" in result.stderr
    assert "$OCRWATCH_CONFIG (not set)" in result.stderr
    assert f"{SYSTEM_CONFIG} (does not exist)" in result.stderr
    # ... and how to get one: where the example comes from and the two ways to name it.
    assert "`ocrwatch init DIR` writes config.example.yaml into DIR" in result.stderr
    assert "-c FILE" in result.stderr and "OCRWATCH_CONFIG=FILE" in result.stderr


def test_the_readme_lists_every_command_and_which_take_c() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    from ocrwatch.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    takes_c = [
        name
        for name, sub in commands.choices.items()
        if any("--config" in a.option_strings for a in sub._actions)
    ]
    for name in commands.choices:
        assert f"| `ocrwatch {name}" in readme, f"{name} is missing from the command table"
    listed = ", ".join(f"`{name}`" for name in takes_c)
    assert f"`-c FILE` is optional for {listed}" in " ".join(readme.split())


def test_a_reader_that_goes_away_is_no_crash(tmp_path: Path) -> None:
    """``ocrwatch completion bash | head -c 0``: exit 141 (SIGPIPE's), quietly, no 70."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ocrwatch", "completion", "bash"],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL, env=clean_env(),
        )  # fmt: skip
    finally:
        os.close(writer)
    assert result.returncode == 141
    assert result.stderr == ""
