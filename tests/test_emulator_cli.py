"""``ocrwatch serve`` as a real process: prints its port, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ocrwatch.emulator import samples
from ocrwatch.emulator.cli import SECRET_ENV, seconds_range

SECRET = "cli-secret-value"


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = _serve("--port", "0", "--processing-seconds", "0-0.05", env={SECRET_ENV: SECRET})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield process, line.split()[-1]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _token(base_url: str, secret: str) -> requests.Response:
    form = {"grant_type": "client_credentials", "client_id": "test-client", "client_secret": secret}
    return requests.post(f"{base_url}/connect/token", data=form, timeout=10)


def test_serve_answers_and_exits_zero_on_sigterm(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    process, base_url = server
    token = _token(base_url, SECRET).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"image": base64.b64encode(samples.make_png("from the CLI")).decode(), "settings": {}}
    url = f"{base_url}/v5.0/ocr/RecognizeImage"
    task_id = requests.post(url, json=body, headers=headers, timeout=10).text
    deadline = time.monotonic() + 10
    while (result := requests.get(url, params={"id": task_id}, headers=headers, timeout=10).json())[
        "taskStatus"
    ] != "Completed":
        assert time.monotonic() < deadline
    assert base64.b64decode(result["results"][0]["data"]) == b"from the CLI"
    assert _token(base_url, "wrong").status_code == 400
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert SECRET not in stderr
    assert token not in stderr
    assert "emulator_serving" in stderr


def test_secret_file_and_faults_from_flags(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    process = _serve(
        "--port", "0", "--client-secret-file", str(secret_file), "--fault-server-error", "1"
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        assert _token(base_url, SECRET).status_code in {500, 502, 503, 504}
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_no_secret_is_a_configuration_error() -> None:
    env = {key: value for key, value in os.environ.items() if key != SECRET_ENV}
    process = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert process.returncode == 78
    assert "--accept-any-credentials" in process.stderr


@pytest.mark.parametrize(
    ("text", "expected"), [("1", (1.0, 1.0)), ("0.5-2", (0.5, 2.0)), ("0", (0.0, 0.0))]
)
def test_seconds_range(text: str, expected: tuple[float, float]) -> None:
    assert seconds_range(text) == expected


@pytest.mark.parametrize("text", ["2-1", "x", "-1"])
def test_bad_seconds_range(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seconds_range(text)
