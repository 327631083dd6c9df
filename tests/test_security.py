"""Security guarantees, end to end: secrets stay out of logs, TLS is verified, nothing escapes.

Unit-level checks live beside their modules (cross-referenced in docs/reliability.md):
secret-file modes and the config-file warning in test_config.py, base URL rules in
test_client_failures.py, secrets in exceptions and client logs in test_client_secrets.py,
template rendering in test_policy.py, 401 on every route in test_emulator_auth.py. Here the
real daemon, the real watchers and a real TLS server prove the same from the outside.
"""

from __future__ import annotations

import http.server
import queue
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    CLIENT_ID,
    emulator_submits,
    run_until,
    running_service,
    write_config,
)
from daemon_process import daemon, ocrwatch_cli, wait_for

from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.errors import ApiUnavailable
from ocrwatch.model import Credentials, JobState, Mode, RecognitionSettings, WatchMode
from ocrwatch.watcher import Watchers, WatchSpec

MakeEmulator = Callable[..., Emulator]

SECRET = "Sentinel-Secret-8d41e7c2"  # recognisable anywhere it might leak
WRONG_SECRET = "Wrong-Sentinel-3fa9b06d"
# Every token the emulator issues is a JWT whose header starts {"alg": ...: base64url "eyJhbGci".
JWT_PREFIX = "eyJhbGci"
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def drop(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)


# ------------------------------------------------------------------- secrets never in logs


def test_debug_logs_of_a_full_cycle_hold_no_secret_and_no_token(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    """Token refreshes (early revocation, expire_tokens) and an auth failure, at debug level."""
    emulator = make_emulator(
        credentials=Credentials(CLIENT_ID, SECRET),
        processing_seconds=(0.2, 0.4),
        faults=Faults(token_lifetime_seconds=1.0),
    )
    config = write_config(tmp_path, emulator.base_url, service={"use_status_probe": True})
    secret_file = tmp_path / "client_secret"
    secret_file.write_text(SECRET)
    log_path = tmp_path / "daemon.log"
    inbox = tmp_path / "inbox"

    with daemon(config, log_path, log_level="debug") as running:
        running.wait_for_event("daemon_ready")
        for n in range(3):
            drop(inbox / f"doc{n}.png", make_png(f"document {n}"))
            wait_for((inbox / f"doc{n}.png.txt").exists, what=f"sidecar {n}")
            time.sleep(1.2)  # outlive the token: the next call must refresh it
        emulator.expire_tokens()
        drop(inbox / "last.png", make_png("after expire_tokens"))
        wait_for((inbox / "last.png.txt").exists, what="sidecar after expire_tokens")
        assert running.terminate() == 0
    refreshed = emulator.stats()
    assert refreshed.token_requests >= 3, "tokens were refreshed during the run"
    assert refreshed.unauthorized >= 1, "a revoked token was refused and replaced"

    secret_file.write_text(WRONG_SECRET)
    with daemon(config, log_path, log_level="debug") as running:
        running.wait_for_event("daemon_ready")
        drop(inbox / "refused.png", make_png("wrong credentials"))
        running.wait_for_event("authentication_failed")
        assert running.terminate() == 0
    assert emulator.stats().token_failures >= 1

    logged = log_path.read_text(encoding="utf-8", errors="backslashreplace")
    assert '"level": "debug"' in logged, "debug logging was really on"
    for needle in (SECRET, WRONG_SECRET, JWT_PREFIX, "Bearer ", "client_secret="):
        assert needle not in logged, f"{needle!r} leaked into the log"
    assert not JWT_PATTERN.search(logged)
    # The refused file waits for valid credentials; it is not the file's fault.
    assert (inbox / "refused.png").exists()
    assert not (tmp_path / "errors" / "refused.png").exists()


def test_the_server_creates_no_task_for_a_daemon_with_wrong_credentials(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emulator = make_emulator(credentials=Credentials(CLIENT_ID, SECRET))
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "client_secret").write_text(WRONG_SECRET)
    with running_service(config) as (service, store, _):
        drop(tmp_path / "inbox" / "doc.png", make_png("not for strangers"))
        run_until(service, lambda: "paused" in service.status_line())
        (job,) = store.jobs([JobState.QUEUED])
        assert "refused the credentials" in (job.last_error or "")
        assert job.attempts == 0, "a refused login does not count as an attempt"
    stats = emulator.stats()
    assert stats.total_submits == 0
    assert 1 <= stats.token_failures <= 2, "refused credentials are not hammered"
    assert (tmp_path / "inbox" / "doc.png").exists()
    assert not (tmp_path / "errors").exists()


# ------------------------------------------------------------------- files and modes


def test_a_secret_file_readable_by_others_stops_the_daemon_before_it_starts(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "client_secret").chmod(0o644)
    drop(tmp_path / "inbox" / "doc.png", make_png("never sent"))
    result = ocrwatch_cli("run", "-c", str(config))
    assert result.returncode == 78, result.stderr
    assert "chmod 600" in result.stderr
    assert "test-secret" not in result.stdout + result.stderr
    assert not (tmp_path / "state" / "state.db").exists()
    assert emulator_submits(emulator) == 0


def test_a_config_file_writable_by_others_is_warned_about(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    config.chmod(0o666)
    result = ocrwatch_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "writable by group or others" in result.stderr


# ------------------------------------------------------------------- TLS


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose certificate no CA signed; yields its base URL."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    requests_seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            requests_seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="tls-test-server")
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
    assert not requests_seen, "no request may get through an unverified TLS connection"


@pytest.mark.parametrize("environment", [{}, {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}])
def test_a_certificate_no_ca_signed_is_refused(
    self_signed_server: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with (
        OcrClient(
            self_signed_server,
            credentials=Credentials(CLIENT_ID, SECRET),
            timeouts=Timeouts(connect_seconds=5, read_seconds=5),
        ) as client,
        pytest.raises(ApiUnavailable, match="TLS") as caught,
    ):
        client.submit(Mode.IMAGE, make_png("over tls"), RecognitionSettings())
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://192.168.1.10", "http://localhost.evil.test", "http://127.0.0.1.evil.test",
     "http://[::ffff:10.0.0.1]", "http://0.0.0.0:8080"],
)  # fmt: skip
def test_plain_http_to_anything_but_this_machine_is_refused_at_start(
    tmp_path: Path, url: str
) -> None:
    config = write_config(tmp_path, url)
    result = ocrwatch_cli("check", "-c", str(config))
    assert result.returncode == 78, result.stderr
    assert "https" in result.stderr


# ------------------------------------------------------------------- nothing written outside


@pytest.mark.parametrize(
    "inbox_change",
    [
        {"output_template": "../{name}.{ext}"},
        {"output_template": "{name}/../../{name}.{ext}"},
        {"output_template": "/tmp/{name}.{ext}"},
        {"output_template": "..\\{name}.{ext}"},
        {"output_template": "{name}.{ext}/.."},
        {"name": "../evil"},
        {"name": "a/b"},
    ],
)
def test_templates_and_names_that_could_leave_the_folders_are_refused(
    tmp_path: Path, emulator: Emulator, inbox_change: dict[str, str]
) -> None:
    inbox = {"name": "s", "path": "inbox", "error_dir": "errors", "output_dir": "out"}
    config = write_config(tmp_path, emulator.base_url, inboxes=[{**inbox, **inbox_change}])
    result = ocrwatch_cli("check", "-c", str(config))
    assert result.returncode == 78, result.stdout + result.stderr
    key = "name" if "name" in inbox_change else "output_template"
    assert key in result.stderr


def test_region_names_with_slashes_only_ever_appear_as_text(
    tmp_path: Path, emulator: Emulator
) -> None:
    regions = [
        {"rect": {"top_left_x": 0, "top_left_y": 0, "bottom_right_x": 800,
                  "bottom_right_y": 300}, "order": 0, "name": "../../escaped"},
        {"rect": {"top_left_x": 0, "top_left_y": 300, "bottom_right_x": 800,
                  "bottom_right_y": 600}, "order": 1, "name": "/etc/ocrwatch-escaped"},
    ]  # fmt: skip
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "output_dir": "out",
                "mode": "regions",
                "regions": regions,
            }
        ],
    )
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "form.png", make_png("top half\nbottom half"))
        run_until(service, (tmp_path / "out" / "form.png.txt").exists)
    text = (tmp_path / "out" / "form.png.txt").read_text()
    assert "## ../../escaped" in text and "## /etc/ocrwatch-escaped" in text
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["form.png.txt"]
    assert not list(tmp_path.parent.glob("escaped*"))
    assert not Path("/etc/ocrwatch-escaped").exists()


# ------------------------------------------------------------------- symlinks


@pytest.mark.parametrize("mode", [WatchMode.EVENTS, WatchMode.POLLING])
def test_the_watcher_never_walks_into_a_symlinked_folder(tmp_path: Path, mode: WatchMode) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    (outside / "before.png").write_bytes(b"private")
    reports: queue.Queue[Path] = queue.Queue()
    seen: list[Path] = []

    def wait_for_report(path: Path) -> None:
        deadline = time.monotonic() + 15.0
        while path not in seen:
            assert time.monotonic() < deadline, f"{path} was never reported"
            try:
                seen.append(reports.get(timeout=0.1))
            except queue.Empty:
                continue

    spec = WatchSpec("s", inbox, True, mode, polling_interval_seconds=0.1)
    watchers = Watchers([spec], lambda _name, path, _event: reports.put(path))
    watchers.start()
    try:
        (inbox / "linked").symlink_to(outside, target_is_directory=True)
        (inbox / "marker1.png").write_bytes(b"x")
        wait_for_report(inbox / "marker1.png")
        (outside / "after.png").write_bytes(b"private too")
        (inbox / "marker2.png").write_bytes(b"y")
        wait_for_report(inbox / "marker2.png")
    finally:
        watchers.stop()
    through_link = [p for p in seen if (inbox / "linked") in p.parents]
    assert not through_link, f"reported through the symlink: {through_link}"


@pytest.mark.parametrize("watch", ["events", "polling"])
def test_a_symlinked_folder_in_a_recursive_inbox_leaves_its_files_untouched(
    tmp_path: Path, emulator: Emulator, watch: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.png").write_bytes(make_png("private"))
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "recursive": True,
                "watch": watch,
                "polling_interval_seconds": 0.1,
            }
        ],
    )
    inbox = tmp_path / "inbox"
    with running_service(config) as (service, _, _):
        (inbox / "linked").symlink_to(outside, target_is_directory=True)
        (inbox / "real").mkdir()
        drop(inbox / "real" / "marker.png", make_png("marker"))
        run_until(service, (inbox / "real" / "marker.png.txt").exists)
        (outside / "later.png").write_bytes(make_png("later"))
        service.rescan(service.now())  # the periodic rescan must not follow the link either
        drop(inbox / "real" / "marker2.png", make_png("marker two"))
        run_until(service, (inbox / "real" / "marker2.png.txt").exists)
        run_until(service, service.is_idle)
    assert sorted(p.name for p in outside.iterdir()) == ["later.png", "private.png"]
    assert not (tmp_path / "errors").exists()
    assert emulator_submits(emulator) == 2


def test_a_symlinked_file_is_refused_and_its_target_untouched(
    tmp_path: Path, emulator: Emulator
) -> None:
    # The error move is covered by test_service.py::test_odd_names_symlinks_and_fifos; here
    # a link to a file in another inbox-like folder must not be read or moved either.
    target = tmp_path / "elsewhere" / "secret.png"
    target.parent.mkdir()
    target.write_bytes(make_png("secret"))
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        (tmp_path / "inbox" / "link.png").symlink_to(target)
        run_until(service, (tmp_path / "errors" / "link.png.error.json").exists)
    assert target.read_bytes() == make_png("secret")
    assert (tmp_path / "errors" / "link.png").is_symlink()
    assert emulator_submits(emulator) == 0


def test_a_subfolder_swapped_for_a_symlink_while_settling_leaves_the_outside_untouched(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "s",
                "path": "inbox",
                "error_dir": "errors",
                "recursive": True,
                "settle_seconds": 1.0,
            }
        ],
    )
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    with running_service(config) as (service, store, _):
        drop(inbox / "sub" / "doc.png", make_png("moved away"))
        run_until(service, lambda: bool(store.jobs([JobState.SETTLING])))
        # Someone moves the folder out of the inbox and leaves a symlink in its place.
        (inbox / "sub").rename(outside)
        (inbox / "sub").symlink_to(outside, target_is_directory=True)
        run_until(service, service.is_idle)
    assert (outside / "doc.png").exists(), "a file outside the inbox was moved"
    assert emulator_submits(emulator) == 0
