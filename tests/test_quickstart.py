"""The README's first command, end to end: `scripts/dev run` reads a dropped scan offline."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from test_engine_accuracy import LABEL_TEXT, character_error_rate, png_bytes, render_label

REPO = Path(__file__).resolve().parent.parent


def test_the_quickstart_command_turns_a_dropped_scan_into_a_sidecar(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shutil.copyfile(REPO / "config.example.yaml", config)
    env = dict(
        os.environ,
        OCRWATCH_CONFIG=str(config),
        XDG_STATE_HOME=str(tmp_path / "state"),
        HOME=str(tmp_path),
    )
    daemon = subprocess.Popen(
        ["sh", str(REPO / "scripts" / "dev"), "run"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        inbox = tmp_path / "inbox"
        sidecar = inbox / "label.png.txt"
        deadline = time.monotonic() + 240
        while not inbox.is_dir() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inbox.is_dir(), "the command creates the folder it watches"
        (tmp_path / "label.png.part").write_bytes(png_bytes(render_label()))
        (tmp_path / "label.png.part").rename(inbox / "label.png")
        while not sidecar.exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sidecar.exists(), "no sidecar appeared"
        assert character_error_rate(sidecar.read_text(), LABEL_TEXT) <= 0.02
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        output, _ = daemon.communicate(timeout=30)
        print(output[-3000:])
