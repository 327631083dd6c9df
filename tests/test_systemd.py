"""The systemd side: the unit files as systemd reads them, and sd_notify on real sockets.

The unit checks parse the files (keys may repeat, as in systemd) and, where
``systemd-analyze`` is installed (Debian: the ``systemd`` package), run ``verify`` and
``security --offline=yes`` on them. The notifier tests bind real AF_UNIX datagram sockets and
read back the exact datagrams; the end-to-end test runs the real daemon as a subprocess with
``NOTIFY_SOCKET`` pointing at such a socket.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_harness import run_until, running_service, write_config

from ocrwatch.config import SYSTEMD_CREDENTIAL
from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.engine import missing_modules
from ocrwatch.service import SHUTDOWN_GRACE_SECONDS
from ocrwatch.store import Store
from ocrwatch.systemd import (
    SystemdNotifier,
    journal_writer,
    notify_address,
    watchdog_interval_seconds,
)
from ocrwatch.watcher import filesystem_type

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "systemd" / "ocrwatch.service"
TEMPLATE = REPO / "systemd" / "ocrwatch@.service"
DROP_IN = REPO / "systemd" / "ocrwatch.service.d" / "folders.conf.example"
CLOUD_DROP_IN = REPO / "systemd" / "ocrwatch.service.d" / "cloud.conf.example"
MAX_EXPOSURE = 2.0  # systemd-analyze security: "OK" is up to 4.9; these units measure 1.4

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """The (key, value) assignments of each section, in order; a key may repeat."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):  # continued on the next line, joined with a space
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: Unit, section: str, key: str) -> str | None:
    """The effective value of a single-valued key: systemd keeps the last assignment."""
    found = values(unit, section, key)
    return found[-1] if found else None


def commented_directives(text: str) -> list[str]:
    """Directives shown commented out (``#Key=value``, no space), as opposed to prose."""
    return [line[1:] for line in text.splitlines() if re.match(r"#[A-Z][A-Za-z]+=", line)]


# ------------------------------------------------------------------------- the unit files

HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "UMask": "0027",
    "RemoveIPC": "yes",
}
SUPERVISION = {
    "Type": "notify",
    "NotifyAccess": "main",
    "Restart": "on-failure",
    "RestartPreventExitStatus": "78 226 243",
    "User": "ocrwatch",
}


@pytest.mark.parametrize(
    ("path", "config", "state_directory"),
    [
        (SERVICE, "/etc/ocrwatch/config.yaml", "ocrwatch"),
        (TEMPLATE, "/etc/ocrwatch/%i.yaml", "ocrwatch/%i"),
    ],
    ids=["service", "template"],
)
def test_unit_has_every_required_directive(path: Path, config: str, state_directory: str) -> None:
    unit = parse_unit(path.read_text(encoding="utf-8"))
    for key, expected in {**SUPERVISION, **HARDENING}.items():
        assert value(unit, "Service", key) == expected, key
    assert value(unit, "Service", "ExecStart") == f"/usr/local/bin/ocrwatch run --config {config}"
    # Waits for the daemon's verdict: a refused config fails `systemctl reload`.
    assert value(unit, "Service", "ExecReload") == "/usr/local/bin/ocrwatch reload"
    assert value(unit, "Service", "RuntimeDirectory") == state_directory
    assert value(unit, "Service", "DynamicUser") is None
    assert value(unit, "Service", "StateDirectory") == state_directory
    # The default (embedded engine) needs no secret: a credential would stop it starting.
    assert value(unit, "Service", "LoadCredential") is None
    # onnxruntime reads /proc/cpuinfo at every engine start; ProcSubset=pid hides it.
    assert value(unit, "Service", "ProcSubset") is None
    assert int(value(unit, "Unit", "StartLimitBurst") or 0) <= 5
    # The loop pings at least once a second; a stop takes up to the shutdown grace.
    assert int(value(unit, "Service", "WatchdogSec") or 0) >= 30
    assert int(value(unit, "Service", "TimeoutStopSec") or 0) >= SHUTDOWN_GRACE_SECONDS + 10
    environment = values(unit, "Service", "Environment")
    assert "ORT_DISABLE_TELEMETRY=1" in environment
    assert "PYTHONUNBUFFERED=1" in environment
    assert values(unit, "Service", "SystemCallFilter")[0] == "@system-service"
    assert value(unit, "Install", "WantedBy") == "multi-user.target"


def test_template_is_hardened_exactly_like_the_service() -> None:
    per_instance = {"ExecStart", "StateDirectory", "RuntimeDirectory"}
    service = parse_unit(SERVICE.read_text(encoding="utf-8"))["Service"]
    template = parse_unit(TEMPLATE.read_text(encoding="utf-8"))["Service"]
    assert [e for e in service if e[0] not in per_instance] == [
        e for e in template if e[0] not in per_instance
    ]


def test_folders_drop_in_example_shows_every_way_to_open_folders() -> None:
    text = DROP_IN.read_text(encoding="utf-8")
    drop_in = parse_unit(text)
    assert value(drop_in, "Service", "ReadWritePaths")
    shown = commented_directives(text)
    for directive in ("SupplementaryGroups=", "ProtectHome=tmpfs", "BindPaths="):
        assert any(line.startswith(directive) for line in shown), directive


def test_cloud_drop_in_example_loads_the_secret_for_the_service_and_the_template() -> None:
    text = CLOUD_DROP_IN.read_text(encoding="utf-8")
    assert value(parse_unit(text), "Service", "LoadCredential") == (
        f"{SYSTEMD_CREDENTIAL}:/etc/ocrwatch/client_secret"
    )
    shown = commented_directives(text)
    assert f"LoadCredential={SYSTEMD_CREDENTIAL}:/etc/ocrwatch/%i.client_secret" in shown
    assert any(line.startswith("LoadCredentialEncrypted=") for line in shown)


# ------------------------------------------------------------------------- systemd-analyze

ANALYZE = shutil.which("systemd-analyze")


def analyze_version() -> int:
    if ANALYZE is None:
        return 0
    first = subprocess.run(
        [ANALYZE, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


needs_analyze = pytest.mark.skipif(
    analyze_version() < 250,
    reason="systemd-analyze 250 or newer is not installed (Debian: apt-get install systemd)",
)


def stage_units(directory: Path, *, with_drop_in: bool) -> Path:
    """Copies of both units, started from a stub (verify wants ExecStart to exist)."""
    stub = directory / "bin" / "ocrwatch"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for unit in (SERVICE, TEMPLATE):
        text = unit.read_text(encoding="utf-8")
        staged = text.replace("=/usr/local/bin/ocrwatch ", f"={stub} ")
        assert staged.count(f"ExecStart={stub} ") == 1
        assert staged.count(f"ExecReload={stub} ") == 1
        (directory / unit.name).write_text(staged)
        if with_drop_in:
            # Every commented-out directive switched on: they must all be valid.
            (directory / f"{unit.name}.d").mkdir()
            for example in (DROP_IN, CLOUD_DROP_IN):
                text = example.read_text(encoding="utf-8")
                enabled = re.sub(r"(?m)^#([A-Z][A-Za-z]+=)", r"\1", text)
                (directory / f"{unit.name}.d" / example.stem).write_text(enabled)
    return directory


def run_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
    )


@needs_analyze
@pytest.mark.parametrize("with_drop_in", [False, True], ids=["bare", "with-drop-in"])
def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path, with_drop_in: bool) -> None:
    staged = stage_units(tmp_path, with_drop_in=with_drop_in)
    units = [
        staged / "ocrwatch.service",
        staged / "ocrwatch@.service",
        staged / "ocrwatch@a.service",
    ]
    result = run_analyze("verify", "--man=no", *map(str, units))
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if "ocrwatch" in line
    ]
    assert result.returncode == 0, result.stderr
    assert complaints == []  # verify only warns (exit 0) about unknown keys or bad values


@needs_analyze
@pytest.mark.parametrize("name", ["ocrwatch.service", "ocrwatch@scans.service"])
def test_systemd_analyze_security_rates_the_units_ok(tmp_path: Path, name: str) -> None:
    staged = stage_units(tmp_path, with_drop_in=True)
    result = run_analyze(
        "security", "--offline=yes", f"--threshold={round(MAX_EXPOSURE * 10)}", str(staged / name)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match is not None, result.stdout
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert match.group(2) in {"OK", "SAFE"}


def test_mountinfo_stays_readable_under_proc_subset_pid() -> None:
    """ProcSubset=pid hides most of /proc; the network-share check reads /proc/self/mountinfo."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a private /proc")
    probe = (
        "from pathlib import Path; from ocrwatch.watcher import filesystem_type; "
        "print(filesystem_type(Path('/')))"
    )
    mount_then_run = (
        "mount -t proc -o subset=pid,hidepid=invisible proc /proc || exit 97; "
        "test -e /proc/cpuinfo && exit 98; "  # the subset really is in force
        'exec "$0" -c "$1"'
    )
    in_namespace = [unshare, "--mount", "--propagation", "private", "--pid", "--fork"]
    result = subprocess.run(
        [*in_namespace, "sh", "-c", mount_then_run, sys.executable, probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode == 97 or result.stderr.startswith("unshare:"):
        pytest.skip(f"cannot mount a private /proc here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(filesystem_type(Path("/")))


# A child that first turns on what MemoryDenyWriteExecute=yes installs: a seccomp filter that
# refuses mmap() with PROT_WRITE|PROT_EXEC, mprotect()/pkey_mprotect() with PROT_EXEC and
# shmat() with SHM_EXEC (x86_64 system call numbers), then proves the filter bites.
_WX_DENIED_PRELUDE = """
import ctypes, sys
class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Insn))]
LD, JEQ, AND, RET, JSET = 0x20, 0x15, 0x54, 0x06, 0x45
ALLOW, EPERM = 0x7FFF0000, 0x00050001
ARG2 = 16 + 2 * 8
code = [(LD, 0, 0, 0), (JEQ, 0, 4, 9), (LD, 0, 0, ARG2), (AND, 0, 0, 6), (JEQ, 9, 8, 6),
        (RET, 0, 0, ALLOW), (JEQ, 2, 0, 10), (JEQ, 1, 0, 329), (JEQ, 2, 4, 30),
        (LD, 0, 0, ARG2), (JSET, 3, 2, 4), (LD, 0, 0, ARG2), (JSET, 1, 0, 0o100000),
        (RET, 0, 0, ALLOW), (RET, 0, 0, EPERM)]
insns = (Insn * len(code))(*[Insn(*i) for i in code])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(Prog(len(code), insns)), 0, 0) == 0  # seccomp filter
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = libc.mmap(None, 4096, 3, 0x22, -1, 0)
assert libc.mprotect(page, 4096, 5) == -1 and ctypes.get_errno() == 1, "filter not in force"
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the seccomp stand-in for MemoryDenyWriteExecute= is written for x86_64 Linux",
)
def test_daemon_and_local_engine_run_without_writable_code(
    tmp_path: Path, emulator: Emulator
) -> None:
    """MemoryDenyWriteExecute=yes holds for the cloud path, the emulator's PDF reading and
    writing, and, if installed, the local engine.

    The engine's worker processes inherit the filter, as they inherit the unit's sandbox.
    """
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "inbox" / "page.png").write_bytes(make_png("no writable code"))
    body = "from ocrwatch.cli import main\nsys.exit(main(['once', '-c', sys.argv[1]]))\n"
    # The embedded service's PDF work runs in the daemon: qpdf (pikepdf) and pdfium.
    body = (
        "from ocrwatch.emulator.document import load_document\n"
        "from ocrwatch.emulator.formats import render\n"
        "from ocrwatch.emulator.recognizer import FixtureRecognizer\n"
        "from ocrwatch.emulator.samples import make_pdf\n"
        "from ocrwatch.model import RecognitionSettings, ResultFormat\n"
        "doc = load_document(make_pdf(['Searchable']), max_pixels=10**8)\n"
        "texts = FixtureRecognizer().recognize(doc, settings=RecognitionSettings()).pages\n"
        "assert render(ResultFormat.PDF, texts, pages=doc.pages, document=doc)\n"
        "assert render(ResultFormat.IMAGE_PNG, texts, pages=doc.pages, document=doc)\n"
    ) + body
    if not missing_modules():
        body = (
            "from ocrwatch.engine import EnginePool\n"
            "from ocrwatch.emulator.samples import make_pdf, make_png\n"
            "with EnginePool(workers=1) as pool:\n"
            "    image = pool.recognize(make_png('Hello world')).text\n"
            "    pdf = pool.recognize(make_pdf(['Second page'])).text\n"
            "assert (image.strip(), pdf.strip()) == ('Hello world', 'Second page'), (image, pdf)\n"
        ) + body
    result = subprocess.run(
        [sys.executable, "-c", _WX_DENIED_PRELUDE + body, str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "inbox" / "page.png.txt").read_text() == "no writable code\n"


# ------------------------------------------------------------------------- the notifier

Listener = tuple[socket.socket, str]


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    """A datagram socket bound in tmp_path; NOTIFY_SOCKET names it by path."""
    path = tmp_path / "notify"
    assert len(os.fsencode(path)) < 108, "AF_UNIX paths are limited to 107 bytes"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield sock, str(path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    """A datagram socket in the abstract namespace; NOTIFY_SOCKET names it ``@name``."""
    name = f"ocrwatch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield sock, "@" + name


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    result: Listener = request.getfixturevalue(f"{request.param}_listener")
    return result


def received(sock: socket.socket) -> list[str]:
    """Every datagram already queued. Sends are synchronous, so nothing is still on its way."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(65536, socket.MSG_DONTWAIT).decode("utf-8"))
        except BlockingIOError:
            return messages


def test_each_call_sends_its_exact_datagram(listener: Listener) -> None:
    sock, address = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "60000000"})
    assert notifier.is_enabled
    assert notifier.watchdog_interval_seconds == 60.0
    notifier.ready()
    notifier.status("watching 1 inbox; 0 waiting")
    notifier.watchdog()
    notifier.extend_timeout(90)
    notifier.stopping()
    assert received(sock) == [
        "READY=1",
        "STATUS=watching 1 inbox; 0 waiting",
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=90000000",
        "STOPPING=1",
    ]


def test_status_goes_out_on_one_line_and_only_when_it_changes(path_listener: Listener) -> None:
    sock, address = path_listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})
    notifier.status("1 problem(s): /srv/in/odd\nname.png: gone")
    notifier.status("1 problem(s): /srv/in/odd name.png: gone")
    notifier.status("all quiet")
    notifier.status("all quiet")
    notifier.status("x" * 5000)
    assert received(sock) == [
        "STATUS=1 problem(s): /srv/in/odd name.png: gone",
        "STATUS=all quiet",
        "STATUS=" + "x" * 1024,
    ]


@pytest.mark.parametrize(
    ("watchdog_env", "expected_interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "2500000"}, 2.5),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "self"}, 2.5),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": ""}, None),
    ],
)
def test_watchdog_pings_only_when_systemd_watches_this_process(
    path_listener: Listener, watchdog_env: dict[str, str], expected_interval: float | None
) -> None:
    sock, address = path_listener
    env = {k: str(os.getpid()) if v == "self" else v for k, v in watchdog_env.items()}
    assert watchdog_interval_seconds(env, pid=os.getpid()) == expected_interval
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, **env})
    assert notifier.watchdog_interval_seconds == expected_interval
    notifier.watchdog()
    assert received(sock) == ([] if expected_interval is None else ["WATCHDOG=1"])


def test_a_busy_loop_pings_at_most_four_times_per_interval(path_listener: Listener) -> None:
    sock, address = path_listener
    now = [1000.0]
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "8000000"}, clock=lambda: now[0]
    )
    for step in [0.0, 0.5, 1.0, 0.6, 0.1, 2.0, 5.0]:  # seconds since the previous call
        now[0] += step
        notifier.watchdog()
    # Sent at t=0, t=2.1 (0.5+1.0+0.6 >= 8/4), t=4.2 and t=9.2; skipped in between.
    assert received(sock) == ["WATCHDOG=1"] * 4


@pytest.mark.parametrize("notify_socket", ["", "relative/notify", "vsock:2:9999", "@"])
def test_outside_systemd_nothing_is_sent_and_nothing_raises(notify_socket: str) -> None:
    env = {"WATCHDOG_USEC": "1000000"}
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    notifier = SystemdNotifier(env)
    assert not notifier.is_enabled
    notifier.ready()
    notifier.status("watching")
    notifier.watchdog()
    notifier.extend_timeout(10)
    notifier.stopping()


def test_notify_address_forms() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@/org/freedesktop/notify") == "\0/org/freedesktop/notify"
    assert notify_address("") is None
    assert notify_address("notify") is None


def test_a_vanished_socket_never_raises_and_status_is_resent_when_it_is_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as first:
        first.bind(str(path))
    path.unlink()  # systemd went away: nothing listens at the path any more
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    notifier.ready()
    notifier.status("lost")
    notifier.watchdog()
    notifier.stopping()
    abstract = SystemdNotifier({"NOTIFY_SOCKET": f"@ocrwatch-nobody-{uuid.uuid4().hex}"})
    abstract.ready()
    abstract.status("lost")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as second:
        second.bind(str(path))
        notifier.status("lost")  # it never arrived, so it is not a repeat
        notifier.watchdog()
        assert received(second) == ["STATUS=lost", "WATCHDOG=1"]


def test_a_full_socket_never_blocks_the_loop(path_listener: Listener) -> None:
    sock, address = path_listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})
    queue_limit = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    sent = queue_limit + 50
    for n in range(sent):  # nobody reads: the receiver's queue fills up before the end
        notifier.status(f"status {n}")
    delivered = received(sock)
    assert 0 < len(delivered) < sent
    assert delivered[0] == "STATUS=status 0"


def test_a_forked_child_does_not_speak_for_the_daemon(path_listener: Listener) -> None:
    sock, address = path_listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})
    pid = os.fork()
    if pid == 0:  # the child: inherited the notifier (as a worker process would)
        notifier.ready()
        notifier.stopping()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert received(sock) == []
    notifier.ready()
    assert received(sock) == ["READY=1"]


# ------------------------------------------------------------------------- the real daemon


def wait_for_datagram(
    sock: socket.socket,
    condition: Callable[[str], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout_seconds: float = 30.0,
) -> list[str]:
    """Read datagrams until one meets ``condition``; return those that came before it."""
    deadline = time.monotonic() + timeout_seconds
    before: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no matching datagram; got {before}\n{log.read_text()[-3000:]}"
        sock.settimeout(min(remaining, 0.2))
        try:
            message = sock.recv(65536).decode("utf-8")
        except TimeoutError:
            # Only once the queue is empty: an exited daemon's last datagrams still count.
            assert process.poll() is None, f"daemon exited early:\n{log.read_text()[-3000:]}"
            continue
        if condition(message):
            return before
        before.append(message)


def test_daemon_is_ready_only_after_start_up_then_reports_and_stops(
    tmp_path: Path, emulator: Emulator, path_listener: Listener
) -> None:
    sock, address = path_listener
    config = write_config(tmp_path, emulator.base_url, rescan_interval_seconds=3600)
    inbox = tmp_path / "inbox"
    (inbox / "before.png").write_bytes(make_png("there before the start"))
    env = {k: v for k, v in os.environ.items() if k not in {"WATCHDOG_PID", "JOURNAL_STREAM"}}
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="2000000")
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocrwatch", "--log-format", "json", "run", "-c", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        before_ready = wait_for_datagram(sock, lambda m: m == "READY=1", process, log)
        # Nothing but the first STATUS line before start-up is complete: `systemctl status`
        # has a line to show from the moment the unit is active.
        assert before_ready == ["STATUS=watching 1 inbox; 1 waiting, 0 in flight, 0 done, 0 failed"]
        # Start-up reconciled the inbox with the store before READY=1 ...
        with Store.open(tmp_path / "state" / "state.db", readonly=True) as store:
            assert store.history(inbox / "before.png")
        # ... and the observers were already up: a new file is picked up without a rescan.
        (inbox / "after.png").write_bytes(make_png("dropped after ready"))
        until_done = wait_for_datagram(sock, lambda m: "2 done, 0 failed" in m, process, log)
        assert "WATCHDOG=1" in until_done
        assert any(m.startswith("STATUS=watching 1 inbox; ") for m in until_done)
        assert (inbox / "before.png.txt").read_text() == "there before the start\n"
        assert (inbox / "after.png.txt").read_text() == "dropped after ready\n"

        process.send_signal(signal.SIGTERM)
        wait_for_datagram(sock, lambda m: m == "STOPPING=1", process, log)
        assert process.wait(timeout=SHUTDOWN_GRACE_SECONDS + 10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_reload_is_announced_and_a_refused_config_fails_ocrwatch_reload(
    tmp_path: Path, emulator: Emulator, path_listener: Listener
) -> None:
    # What ExecReload= runs: `ocrwatch reload` must exit 1 when the daemon keeps its old
    # config, so that `systemctl reload` fails visibly; systemd >= 253 also hears
    # RELOADING=1 with MONOTONIC_USEC, then READY=1.
    sock, address = path_listener
    config = write_config(tmp_path, emulator.base_url, rescan_interval_seconds=3600)
    good = config.read_text()
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"WATCHDOG_PID", "JOURNAL_STREAM"}}
    env.update(NOTIFY_SOCKET=address, RUNTIME_DIRECTORY=str(runtime))
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocrwatch", "--log-format", "json", "run", "-c", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    reload_env = {k: v for k, v in env.items() if k != "NOTIFY_SOCKET"}
    reload_env["MAINPID"] = str(process.pid)

    def reload() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocrwatch", "reload", "--timeout", "30"],
            env=reload_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    try:
        wait_for_datagram(sock, lambda m: m == "READY=1", process, log)
        config.write_text(good.replace("scans", "scans", 1) + "rescan_interval_seconds: -5\n")
        refused = reload()
        assert refused.returncode == 1, refused
        assert "refused" in refused.stderr
        assert "rescan_interval_seconds" in refused.stderr
        before = wait_for_datagram(sock, lambda m: m == "READY=1", process, log)
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", before[-2])
        usec = int(before[-2].rsplit("=", 1)[1])
        assert 0 < usec <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before[-1].startswith("STATUS=watching 1 inbox; ")
        assert before[-1].endswith("; config reload refused, the previous config is in force")

        config.write_text(good)
        taken = reload()
        assert taken.returncode == 0, taken
        before = wait_for_datagram(sock, lambda m: m == "READY=1", process, log)
        assert before[-2].startswith("RELOADING=1\n")
        assert before[-1].startswith("STATUS=watching 1 inbox; ")
        assert "refused" not in before[-1], "the note goes with the first good reload"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_GRACE_SECONDS + 10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def test_ocrwatch_reload_outside_a_unit_says_what_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MAINPID", "RUNTIME_DIRECTORY"}}
    result = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "reload"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ExecReload=" in result.stderr
    assert "needs $MAINPID (or --pid) and $RUNTIME_DIRECTORY" in result.stderr

    # With --pid given, only the runtime directory is missing, and only it is named.
    with_pid = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "reload", "--pid", str(os.getpid())],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert with_pid.returncode == 2
    assert "needs $RUNTIME_DIRECTORY" in with_pid.stderr and "MAINPID" not in with_pid.stderr


def test_a_large_journal_entry_goes_in_a_sealed_memfd(tmp_path: Path) -> None:
    # Past the socket's datagram limit (its send buffer, at most net.core.wmem_max), journald
    # takes an entry only as a sealed memfd passed over the socket, as sd_journal_sendv does.
    address = tmp_path / "journal.socket"
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    big = "page text " * (wmem_max // 5)  # twice the largest datagram
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journald:
        journald.bind(str(address))
        writer = journal_writer(address)
        assert writer is not None
        try:
            writer.send({"MESSAGE": "text_extracted", "TEXT": big, "TRACE": "a\nb"})
        finally:
            writer.close()
        data, ancillary, _, _ = journald.recvmsg(4096, socket.CMSG_SPACE(4))
    assert data == b""
    ((level, kind, payload),) = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fd = int.from_bytes(payload[:4], sys.byteorder)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        for seal in (fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_GROW, fcntl.F_SEAL_WRITE):
            assert seals & seal
        entry = os.pread(fd, os.fstat(fd).st_size, 0)  # journald maps it from the start
    finally:
        os.close(fd)
    assert entry.startswith(b"MESSAGE=text_extracted\nTEXT=page text ")
    assert entry.endswith(b"TRACE\n" + (3).to_bytes(8, "little") + b"a\nb\n")


# ------------------------------------------------------------------ what a restart must redo


def test_a_restart_with_a_corrected_secret_authenticates_at_once(
    tmp_path: Path, emulator: Emulator
) -> None:
    # The 300 s pause after refused credentials protects the token endpoint's lockout within
    # one run; kept in the state file, it made a corrected secret wait 5 minutes after
    # `systemctl restart`. The pause belongs to the credential, which a restart re-reads.
    config = write_config(tmp_path, emulator.base_url)
    secret = tmp_path / "client_secret"
    good_secret = secret.read_text()
    secret.write_text("not-the-secret")
    page = tmp_path / "inbox" / "page.png"
    page.write_bytes(make_png("after the fix"))
    with running_service(config) as (service, store, _):
        run_until(service, lambda: any(j.last_error for j in store.history(page)))
        assert service.status_line().endswith("service unavailable, paused")
    secret.write_text(good_secret)
    with running_service(config) as (service, _, _):
        # Far less than the 300 s pause: only the restart's own work stands in the way.
        run_until(service, (page.parent / "page.png.txt").exists, timeout_seconds=30)
    assert (page.parent / "page.png.txt").read_text() == "after the fix\n"


def test_read_only_commands_need_no_client_secret(tmp_path: Path, emulator: Emulator) -> None:
    # `sudo -u ocrwatch ocrwatch status` runs outside the unit, where systemd's credentials
    # directory does not exist: status, explain and retry never call the service.
    config = write_config(tmp_path, emulator.base_url)
    text = config.read_text().replace(str(tmp_path / "client_secret"), "")
    document = [line for line in text.splitlines() if "client_secret_file" not in line]
    config.write_text("\n".join(document) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCRWATCH_", "CREDENTIALS"))}

    def ocrwatch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocrwatch", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    for command in (["status"], ["explain", str(tmp_path / "inbox" / "x.png")]):
        result = ocrwatch(*command, "-c", str(config))
        assert result.returncode == 0, (command, result.stderr)
        assert "no client secret" not in result.stderr
    checked = ocrwatch("check", "-c", str(config))  # run and check do need it
    assert checked.returncode == 78
    assert "no client secret" in checked.stderr
