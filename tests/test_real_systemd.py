"""The unit under a real systemd: Debian bookworm booted in systemd-nspawn, installed per README.

What ``tests/test_systemd.py`` checks from the files (keys, ``systemd-analyze``) is checked
here as systemd 252 actually runs it. One container serves the whole module, because
building it is the cost: ``debootstrap --variant=minbase`` of bookworm (about 1 to 2.5 min),
a boot (under a second), and the README's install block run word for word as root in a copy
of this checkout (``pip install '.[engine]'``, about 40 s). Nothing is cached across runs:
the root file system is made in /var/tmp and removed at the end, and the time of each phase
is printed.

Needs root, ``debootstrap`` and ``systemd-nspawn`` (Debian: ``debootstrap``,
``systemd-container``; ``scripts/dev test`` installs both as root), the Debian mirror this
machine's apt uses, and the package index its pip uses (pip's config, CA bundle and local
wheel folders are passed into the container read-only; the container shares the host's
network). Elsewhere the module is skipped and says why; under ``CI=true`` a missing tool is a
failure, since this module is the proof that the unit works.

The container is driven with ``nsenter`` into its PID 1's namespaces: there is no machined
(nor D-Bus) on the host for ``systemd-run -M``. Everything waits on conditions with
deadlines; the stop-time and start-limit claims are checked with systemd's own verdicts
(``Result=``, ``SubState=``), not with a stopwatch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_CREDENTIALS_ID, TEST_CREDENTIALS_SECRET

from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHECKOUT = "/root/ocrwatch"  # where the README's commands run, as a user's checkout
INBOX = "/srv/scans/inbox"
ERRORS = "/srv/scans/errors"
CONFIG = "/etc/ocrwatch/config.yaml"
DROP_INS = "/etc/systemd/system/ocrwatch.service.d"
MAX_EXPOSURE = 2.0


def missing_requirements() -> str | None:
    """Why this machine cannot boot the container, or None if it can."""
    if os.geteuid() != 0:
        return "needs root (debootstrap and systemd-nspawn)"
    for tool, package in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container")):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: apt-get install {package}; scripts/dev test does it)"
    if debian_mirror() is None:
        return "no Debian mirror in this machine's apt sources (/etc/apt/sources.list*)"
    return None


def debian_mirror() -> str | None:
    """The first Debian archive URI this machine's apt is configured with."""
    sources = Path("/etc/apt/sources.list.d")
    texts = [path.read_text() for path in sorted(sources.glob("*.sources"))]
    for text in texts:  # deb822: stanzas of Key: value lines
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"(?m)^([A-Za-z-]+):\s*(.*)$", stanza))
            if fields.get("Enabled", "yes") == "no" or "deb" not in fields.get("Types", ""):
                continue
            suites = fields.get("Suites", "").split()
            for uri in fields.get("URIs", "").split():
                if any(s in {SUITE, "stable"} for s in suites) and "security" not in uri:
                    return uri
    one_line = [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]
    for path in one_line:
        with contextlib.suppress(OSError):
            for match in re.finditer(
                r"(?m)^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", path.read_text()
            ):
                if match.group(2) in {SUITE, "stable"} and "security" not in match.group(1):
                    return match.group(1)
    return None


REASON = missing_requirements()
if REASON is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"tests/test_real_systemd.py must run in CI: {REASON}")
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
    pytest.mark.timeout(1800),  # the first test builds the module's container
]


# ----------------------------------------------------------------------------- the container


def pip_passthrough() -> tuple[dict[str, str], list[str]]:
    """The pip (and proxy) settings of this machine: environment, and paths to bind read-only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("PIP_") or k.lower() in {"http_proxy", "https_proxy", "no_proxy"}
    }
    paths = {"/etc/pip.conf", "/etc/xdg/pip", "/etc/ssl/certs/ca-certificates.crt"}
    for key in ("PIP_CERT", "PIP_CONFIG_FILE", "PIP_CONSTRAINT", "REQUESTS_CA_BUNDLE"):
        paths.update(os.environ.get(key, "").split())
    paths.update(os.environ.get("PIP_FIND_LINKS", "").split())  # local wheel folders
    return env, sorted(p for p in paths if p.startswith("/") and Path(p).exists())


class Container:
    """A booted bookworm; ``sh`` runs a script as root inside it."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.env, self._binds = pip_passthrough()
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None

    def boot(self) -> None:
        binds = self._binds
        command = [
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "-q",
            "-D",
            str(self.root),
            "-b",
        ]
        command += [f"--bind-ro={path}" for path in binds]
        with self.log.open("ab") as out:
            self.nspawn = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        self.pid1 = self._find_init()
        # Until systemd listens on its private socket, systemctl cannot even ask; then it
        # waits for the boot to finish.
        deadline = time.monotonic() + 120
        while True:
            asked = self.sh("systemctl is-system-running --wait", timeout=120)
            if asked.stdout.strip() in {"running", "degraded"}:
                return
            assert time.monotonic() < deadline, self.diagnose(asked.stdout + asked.stderr)
            time.sleep(0.1)

    def _find_init(self) -> int:
        assert self.nspawn is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.nspawn.poll() is None, self.diagnose("systemd-nspawn exited")
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.05)
        raise AssertionError(self.diagnose("the container's systemd never started"))

    def sh(
        self, script: str, *, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", **self.env}
        env.update(SYSTEMD_COLORS="0", SYSTEMD_PAGER="", DEBIAN_FRONTEND="noninteractive")
        assert self.pid1 is not None, "not booted"
        command = ["nsenter", "-t", str(self.pid1), "-a", "env", "-i"]
        command += [f"{k}={v}" for k, v in env.items()]
        result = subprocess.run(
            [*command, "bash", "-euo", "pipefail", "-c", script],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, (
                f"{script}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def show(self, *properties: str) -> dict[str, str]:
        names = ",".join(properties)
        out = self.sh(f"systemctl show ocrwatch -p {names}", check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        out = self.sh("journalctl -u ocrwatch -o json --no-pager " + " ".join(args), check=True)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def wait_for(
        self, condition: Callable[[], bool], what: str, *, timeout_seconds: float = 90
    ) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(self.diagnose(f"not within {timeout_seconds} s: {what}"))
            time.sleep(0.2)

    def path(self, inside: str) -> Path:
        """A path of the container as the host sees it (the same files, the same inodes)."""
        return self.root / inside.lstrip("/")

    def diagnose(self, message: str) -> str:
        if self.pid1 is None:
            return f"{message}\n{self.log.read_text(errors='replace')[-3000:]}"
        status = self.sh("systemctl status ocrwatch --no-pager -n 30 || true").stdout
        return f"{message}\n{status[-4000:]}"

    def poweroff(self) -> None:
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None and self.pid1 is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sh("systemctl poweroff --no-block", timeout=30)
        try:
            self.nspawn.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # SIGKILL to the namespace's init takes every process of the container with it.
            if self.pid1 is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid1, signal.SIGKILL)
            self.nspawn.kill()
            self.nspawn.wait(timeout=60)


def copy_checkout(target: Path) -> None:
    """The tracked files of this checkout, as a user who cloned it has them."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False
    )
    names = [n for n in listed.stdout.decode().split("\0") if n] if listed.returncode == 0 else []
    if not names:  # not a git checkout (an unpacked sdist): every file but build leftovers
        skip = {".venv", ".git", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache"}
        names = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO).parts)
        ]
    for name in names:
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def readme_install_block() -> str:
    """The first ``sh`` block of the README's systemd section: the install, as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Installing as a systemd service") :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's systemd section has no sh block"
    return match.group(1)


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if (line.split()[4] + "/").startswith(prefix)]


def remove_root(root: Path) -> None:
    """Delete the root file system, never through a mount left behind (a host's /dev, say)."""
    for mount in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    if mounts_under(root):
        raise AssertionError(f"mounts left under {root}; not deleting it: {mounts_under(root)}")
    shutil.rmtree(root, ignore_errors=True)


Report = Callable[[str], None]


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Report:
    """Print a measurement on the terminal (times are shown, never asserted)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        # Past pytest's output capture, so the numbers show in every run, CI's included.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(f"test_real_systemd: {line}")

    return write


@pytest.fixture(scope="module")
def container(report: Report) -> Iterator[Container]:
    mirror = debian_mirror()
    assert mirror is not None
    root = Path(tempfile.mkdtemp(prefix="ocrwatch-nspawn-", dir="/var/tmp"))
    log = root.parent / f"{root.name}.log"
    box: Container | None = None
    try:
        started = time.monotonic()
        with log.open("wb") as out:
            made = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE,
                 str(root / "fs"), mirror],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False,
                timeout=900,
            )  # fmt: skip
        assert made.returncode == 0, f"debootstrap failed:\n{log.read_text()[-3000:]}"
        report(f"debootstrap {SUITE} from {mirror}: {time.monotonic() - started:.0f} s")
        fs = root / "fs"
        copy_checkout(fs / CHECKOUT.lstrip("/"))
        started = time.monotonic()
        box = Container(fs, log)
        box.boot()
        report(f"boot: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        installed = box.sh(f"cd {CHECKOUT}\n{readme_install_block()}", timeout=1200)
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
        report(f"the README's install (pip install '.[engine]' included): "
               f"{time.monotonic() - started:.0f} s")  # fmt: skip
        yield box
    finally:
        if box is not None:
            box.poweroff()
        remove_root(root)
        log.unlink(missing_ok=True)


def drop(box: Container, name: str, data: bytes) -> None:
    """Put a file in the inbox as a user would: written elsewhere, then moved in."""
    staging = box.path(f"/root/{name}")
    staging.write_bytes(data)
    box.sh(f"mv /root/{name} {INBOX}/{name}", check=True)


def main_pid(box: Container) -> int:
    return int(box.show("MainPID")["MainPID"])


# ----------------------------------------------------------------------------- the claims


def test_the_example_config_starts_at_once_and_stays_up(container: Container) -> None:
    # The README's install, verbatim, with the example config: the embedded engine, no
    # secret, no restart (it used to loop on 243/CREDENTIALS).
    shown = container.show("ActiveState", "SubState", "NRestarts", "Result", "StatusText")
    assert shown["ActiveState"] == "active", container.diagnose(str(shown))
    assert shown["SubState"] == "running"
    assert shown["NRestarts"] == "0"
    assert shown["Result"] == "success"
    assert shown["StatusText"].startswith("watching 1 inbox; ")


def test_a_dropped_file_gets_its_sidecar_under_the_full_sandbox(container: Container) -> None:
    drop(container, "page.png", make_png("hello from a real systemd"))
    sidecar = container.path(f"{INBOX}/page.png.txt")
    container.wait_for(sidecar.exists, "the sidecar of page.png")
    assert sidecar.read_text() == "hello from a real systemd\n"
    listed = container.sh(f"stat -c '%a %U' {INBOX}/page.png.txt", check=True).stdout.split()
    assert listed == ["640", "ocrwatch"], "UMask=0027 gives 0640, owned by the service user"
    status = container.sh(f"cat /proc/{main_pid(container)}/status", check=True).stdout
    fields = dict(re.findall(r"(?m)^(\w+):\s+(.*)$", status))
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    assert int(fields["CapEff"], 16) == 0
    assert fields["Umask"] == "0027"
    # onnxruntime started in engine workers and found /proc/cpuinfo (no ProcSubset=pid).
    text = container.sh("journalctl -u ocrwatch -o cat --no-pager", check=True).stdout
    assert "engine_started" in text
    assert "cpuinfo" not in text


def test_the_journal_gets_native_records_with_fields_and_priorities(
    container: Container,
) -> None:
    # A PNG that ends well (IEND) but cannot be decoded: it settles, fails and is moved.
    broken = b"\x89PNG\r\n\x1a\n" + b"garbage" * 20 + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    drop(container, "broken.png", broken)
    reason = container.path(f"{ERRORS}/broken.png.error.json")
    container.wait_for(reason.exists, "broken.png in the error folder with its reason")
    assert container.path(f"{ERRORS}/broken.png").read_bytes() == broken
    entries = [e for e in container.journal() if e.get("SYSLOG_IDENTIFIER") == "ocrwatch"]
    assert entries, "no record of ocrwatch's own in the journal"
    assert {e["_TRANSPORT"] for e in entries} == {"journal"}, "every record native, none text"
    done = next(e for e in entries if e["MESSAGE"] == "file_done")
    assert done["PRIORITY"] == "6"
    assert done["PATH"] == f"{INBOX}/page.png"
    assert done["OCRWATCH_JOB_ID"].isdigit()
    assert done["CODE_LINE"].isdigit()
    assert done["CODE_FILE"].endswith(".py")
    assert not any("JOB_ID" in e for e in entries), "JOB_ID is systemd's own field"
    warnings = [e for e in container.journal("-p", "warning") if e.get("SYSLOG_IDENTIFIER")]
    failed = [e for e in warnings if e.get("PATH", "").endswith("broken.png")]
    assert failed, "the failed file shows under journalctl -p warning"
    assert [e["PRIORITY"] for e in failed if e["MESSAGE"] == "file_moved_to_error"] == ["3"]
    one_job = container.journal(f"OCRWATCH_JOB_ID={done['OCRWATCH_JOB_ID']}")
    assert {e["MESSAGE"] for e in one_job} >= {"file_discovered", "file_done"}


def test_a_refused_reload_fails_systemctl_reload(container: Container) -> None:
    config = container.path(CONFIG)
    good = config.read_bytes()
    config.write_bytes(good + b"rescan_interval_seconds: -5\n")
    try:
        refused = container.sh("systemctl reload ocrwatch")
    finally:
        config.write_bytes(good)
    assert refused.returncode != 0, "systemctl reload must fail when the config is refused"
    shown = container.show("ActiveState", "NRestarts", "StatusText")
    assert shown["ActiveState"] == "active"
    assert shown["NRestarts"] == "0"
    assert "refused" in shown["StatusText"]
    problems = [e for e in container.journal("-p", "err") if e["MESSAGE"] == "config_reload_failed"]
    assert problems
    assert "rescan_interval_seconds" in problems[-1]["PROBLEMS"]
    taken = container.sh("systemctl reload ocrwatch")
    assert taken.returncode == 0, taken.stderr
    container.wait_for(
        lambda: "refused" not in container.show("StatusText")["StatusText"],
        "the note in STATUS gone after a good reload",
    )


def test_the_watchdog_restarts_a_stopped_main_process(container: Container) -> None:
    drop_in = container.path(f"{DROP_INS}/zz-test-watchdog.conf")
    # The shipped 60 s, shortened for the test; the mechanism is the same.
    drop_in.write_text("[Service]\nWatchdogSec=4\nRestartSec=1\n")
    try:
        container.sh("systemctl daemon-reload && systemctl restart ocrwatch", check=True)
        before = int(container.show("NRestarts")["NRestarts"])
        stopped = main_pid(container)
        container.sh(f"kill -STOP {stopped}", check=True)

        def restarted() -> bool:
            shown = container.show("NRestarts", "ActiveState", "MainPID")
            return (
                int(shown["NRestarts"]) == before + 1
                and shown["ActiveState"] == "active"
                and int(shown["MainPID"]) not in {0, stopped}
            )

        container.wait_for(restarted, "a restart by the watchdog")
        text = container.sh("journalctl -u ocrwatch -o cat --no-pager", check=True).stdout
        assert "Watchdog timeout" in text
    finally:
        drop_in.unlink(missing_ok=True)
        container.sh("systemctl daemon-reload && systemctl restart ocrwatch", check=True)


def test_a_stop_ends_within_10_seconds(container: Container, report: Report) -> None:
    # systemd's verdict, not a stopwatch: past TimeoutStopSec=10 it kills the service and
    # records Result=timeout.
    drop_in = container.path(f"{DROP_INS}/zz-test-stop.conf")
    drop_in.write_text("[Service]\nTimeoutStopSec=10\n")
    try:
        container.sh("systemctl daemon-reload", check=True)
        drop(container, "late.png", make_png("in flight at the stop"))
        started = time.monotonic()
        container.sh("systemctl stop ocrwatch", check=True, timeout=60)
        report(f"systemctl stop with a file in flight: {time.monotonic() - started:.2f} s")
        shown = container.show("Result", "ActiveState", "ExecMainStatus", "ExecMainCode")
        assert shown["Result"] == "success", container.diagnose(str(shown))
        assert shown["ActiveState"] == "inactive"
        assert shown["ExecMainStatus"] == "0"
    finally:
        drop_in.unlink(missing_ok=True)
        container.sh("systemctl daemon-reload && systemctl start ocrwatch", check=True)
    late = container.path(f"{INBOX}/late.png.txt")
    container.wait_for(late.exists, "the file that was in flight, done after the start")
    assert late.read_text() == "in flight at the stop\n"


def test_the_unit_rates_ok_where_it_runs(container: Container) -> None:
    out = container.sh("systemd-analyze security ocrwatch --no-pager", check=True).stdout
    match = re.search(r"Overall exposure level for ocrwatch.service: (\d+\.\d+)", out)
    assert match is not None, out[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_cloud_credentials_reach_the_service_and_a_missing_one_does_not_loop(
    container: Container, emulator: Emulator
) -> None:
    # Aspose Cloud (the emulator on the host's loopback, which the container shares) with
    # cloud.conf: a missing secret file fails the start once (243) without a restart loop;
    # with the file, the secret reaches the daemon as a credential.
    config = container.path(CONFIG)
    embedded = config.read_text()
    cloud = embedded.replace(
        "  url: embedded", f"  url: {emulator.base_url}\n  client_id: {TEST_CREDENTIALS_ID}"
    )
    assert cloud != embedded
    config.write_text(cloud)
    container.sh(
        f"cp {CHECKOUT}/systemd/ocrwatch.service.d/cloud.conf.example {DROP_INS}/cloud.conf"
        " && systemctl daemon-reload",
        check=True,
    )
    try:
        failed = container.sh("systemctl restart ocrwatch")
        assert failed.returncode != 0
        container.wait_for(
            lambda: container.show("ActiveState")["ActiveState"] == "failed", "a failed unit"
        )
        shown = container.show("SubState", "ExecMainStatus", "Result")
        assert shown["ExecMainStatus"] == "243", str(shown)  # 243/CREDENTIALS
        assert shown["SubState"] == "failed", "no auto-restart is scheduled"

        secret = (
            f"(umask 077; printf '%s' '{TEST_CREDENTIALS_SECRET}' > /etc/ocrwatch/client_secret)"
        )
        container.sh(f"{secret} && systemctl reset-failed ocrwatch && systemctl start ocrwatch",
                     check=True)  # fmt: skip
        drop(container, "cloud.png", make_png("recognised in the cloud"))
        sidecar = container.path(f"{INBOX}/cloud.png.txt")
        container.wait_for(sidecar.exists, "the sidecar of a file sent to the cloud")
        assert sidecar.read_text() == "recognised in the cloud\n"
        assert sum(emulator.stats().submits.values()) >= 1
        # Read-only commands from a shell, as the docs show, need no secret.
        status = container.sh(
            f"runuser -u ocrwatch -- env STATE_DIRECTORY=/var/lib/ocrwatch "
            f"/usr/local/bin/ocrwatch status -c {CONFIG}"
        )
        assert status.returncode == 0, status.stderr
    finally:
        config.write_text(embedded)
        container.sh(
            f"rm -f {DROP_INS}/cloud.conf /etc/ocrwatch/client_secret && systemctl daemon-reload"
            " && systemctl reset-failed ocrwatch; systemctl restart ocrwatch"
        )
