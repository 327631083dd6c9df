"""Talk to systemd with the standard library only: sd_notify, the journal, and reload results.

Three small protocols, none of which needs libsystemd (systemd-python is sdist-only and
needs a compiler):

- sd_notify: one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Every call is a no-op
outside systemd, and a failure to send is logged at debug level and never raised:
supervision must not be able to take the daemon down.
- the journal's native protocol: one datagram of fields to ``/run/systemd/journal/socket``
  per entry, ``NAME=value\n`` each, or ``NAME\n`` + 64-bit little-endian length + bytes +
  ``\n`` for a value with a newline in it. An entry too large for a datagram goes into a
  sealed memfd whose descriptor is passed with ``SCM_RIGHTS`` (journald refuses an unsealed
  one). ``JournalWriter`` raises ``OSError``; its caller (logsetup) falls back to stderr.
- reload results: ``systemctl reload`` on systemd 252 (bookworm) reports whatever
  ``ExecReload=`` exits with, and ``READY=1`` after ``RELOADING=1`` cannot say "refused". So
  the daemon writes the outcome of each reload to ``$RUNTIME_DIRECTORY/reload.json``, and
  ``ocrwatch reload`` (the unit's ``ExecReload=``) sends SIGHUP and waits for that outcome.

Hazards guarded here:
- ``WATCHDOG=1`` is sent only from the control loop, so a stuck loop gets restarted; it is
  enabled only when ``$WATCHDOG_USEC`` is set and ``$WATCHDOG_PID`` (if set) is this process.
- A child that inherited the environment, or a copy of this object across ``fork()``, must
  not speak for the daemon: sends from any other pid than the creator's are dropped.
- ``STATUS=`` text is one line: a newline would start a new (bogus) assignment.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

STATUS_MAX_CHARS = 1024  # systemctl status shows one line; keep the datagram small
WATCHDOG_PINGS_PER_INTERVAL = 4  # a busy loop pings at most this often per WatchdogSec
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
JOURNAL_SEND_TIMEOUT_SECONDS = 5.0  # journald stalled: the record goes to stderr instead
_JOURNAL_SNDBUF_BYTES = 8 * 1024 * 1024  # as libsystemd asks; the kernel caps it
_MEMFD_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
RELOAD_RESULT_NAME = "reload.json"
RELOAD_REFUSED_NOTE = "; config reload refused, the previous config is in force"


def notify_address(value: str) -> str | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None if unset or not a Unix socket.

    An abstract socket is written ``@name`` and addressed with a leading NUL byte. Anything
    that is neither absolute nor abstract (``vsock:...``, a relative path) is not for us.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval_seconds(environ: Mapping[str, str], *, pid: int) -> float | None:
    """``WatchdogSec=`` in seconds when the watchdog is meant for process ``pid``, else None."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid != str(pid):
        return None
    return int(usec) / 1_000_000


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/EXTEND_TIMEOUT/STOPPING datagrams to ``$NOTIFY_SOCKET``."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if environ is None else environ
        self._pid = os.getpid()
        self._address = notify_address(env.get("NOTIFY_SOCKET", ""))
        self._clock = clock
        self._last_status: str | None = None
        self._last_text = ""
        self._note = ""
        self._last_ping_at: float | None = None
        self._reloads = 0
        runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
        self._runtime_directory = Path(runtime) if runtime.startswith("/") else None
        self.watchdog_interval_seconds = watchdog_interval_seconds(env, pid=self._pid)

    @property
    def is_enabled(self) -> bool:
        """Whether the process runs under a service manager that listens."""
        return self._address is not None

    def ready(self) -> None:
        """Start-up is complete: config, store, reconciliation and observers are all up."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """The one-line status ``systemctl status`` shows; sent only when it changes.

        After a refused reload every line ends with ``RELOAD_REFUSED_NOTE`` until a reload
        is taken: the old config is still in force, and ``systemctl status`` says so.
        """
        self._last_text = text
        line = " ".join((text + self._note).split())[:STATUS_MAX_CHARS]
        if line != self._last_status and self._send(f"STATUS={line}"):
            self._last_status = line

    def watchdog(self) -> None:
        """The control loop is alive. Call only from the control loop, once per iteration.

        A busy loop calls this far more often than systemd needs; pings closer together than
        a quarter of the interval are skipped, which costs at most that quarter of slack.
        """
        interval = self.watchdog_interval_seconds
        if interval is None:
            return
        now = self._clock()
        if (
            self._last_ping_at is not None
            and now - self._last_ping_at < interval / WATCHDOG_PINGS_PER_INTERVAL
        ):
            return
        if self._send("WATCHDOG=1"):
            self._last_ping_at = now

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before start-up (or stop) counts as hung.

        For a long start-up reconciliation: systemd extends ``TimeoutStartSec=`` from now, so
        call it again before the extension runs out.
        """
        self._send(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; ``reloaded`` must follow. systemd >= 253 needs MONOTONIC_USEC."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def reloaded(self, *, ok: bool, problems: Sequence[str] = ()) -> None:
        """The reload is over (``ok``, or refused for ``problems``): back to READY=1.

        The outcome is also written for ``ocrwatch reload``, which systemd runs as
        ``ExecReload=`` and which exits non-zero on a refusal, so that ``systemctl reload``
        fails visibly; systemd itself has no way to hear "refused" over sd_notify.
        """
        self._reloads += 1
        if self._runtime_directory is not None and os.getpid() == self._pid:
            record = {"pid": self._pid, "seq": self._reloads, "ok": ok, "problems": list(problems)}
            try:
                write_reload_result(self._runtime_directory, record)
            except OSError as exc:
                log.warning("reload_result_not_written", error=str(exc))
        self._note = "" if ok else RELOAD_REFUSED_NOTE
        self.status(self._last_text)
        self._send("READY=1")

    def _send(self, message: str) -> bool:
        """Send one datagram without ever blocking; True if it went out."""
        if self._address is None or os.getpid() != self._pid:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                data = message.encode("utf-8", errors="replace")
                sock.sendto(data, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            # Gone (systemd re-executing), refused, or its queue is full: a later call retries.
            log.debug("sd_notify_failed", message=message.split("=", 1)[0], error=str(exc))
            return False
        return True


# ----------------------------------------------------------------------------- the journal


def journal_entry(fields: Mapping[str, str]) -> bytes:
    """The native-protocol serialization of one entry (field names are already valid)."""
    parts: list[bytes] = []
    for name, value in fields.items():
        data = value.encode("utf-8", errors="replace")
        if b"\n" in data:
            parts.append(name.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(name.encode("ascii") + b"=" + data + b"\n")
    return b"".join(parts)


class JournalWriter:
    """Sends entries to journald over its native socket; ``send`` raises ``OSError``."""

    def __init__(self, address: Path = JOURNAL_SOCKET) -> None:
        self._address = str(address)
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None  # opened at the first entry

    def _connection(self) -> socket.socket:
        with self._lock:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                with contextlib.suppress(OSError):  # a smaller buffer: more memfd entries
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _JOURNAL_SNDBUF_BYTES)
                sock.settimeout(JOURNAL_SEND_TIMEOUT_SECONDS)
                self._socket = sock
            return self._socket

    def __call__(self, fields: Mapping[str, str], /) -> None:
        self.send(fields)

    def send(self, fields: Mapping[str, str]) -> None:
        """One entry; a datagram if it fits, else a sealed memfd passed with SCM_RIGHTS."""
        entry = journal_entry(fields)
        try:
            self._connection().sendto(entry, self._address)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(entry)

    def _send_memfd(self, entry: bytes) -> None:
        fd = os.memfd_create("ocrwatch-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(entry)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _MEMFD_SEALS)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self._connection().sendmsg([], rights, 0, self._address)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def journal_writer(address: Path = JOURNAL_SOCKET) -> JournalWriter | None:
    """A writer for the journal at ``address``, or None when journald is not listening there."""
    if not address.is_socket():
        return None
    # A socket file with nobody behind it (journald stopped) refuses the connection.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as probe:
        try:
            probe.connect(str(address))
        except OSError:
            return None
    return JournalWriter(address)


# ----------------------------------------------------------------------------- reload results


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What the daemon made of one SIGHUP: taken (``ok``) or refused for ``problems``."""

    ok: bool
    problems: tuple[str, ...]


def write_reload_result(directory: Path, record: Mapping[str, object]) -> None:
    """Replace ``directory/reload.json`` in one rename, so a reader never sees half of it."""
    target = directory / RELOAD_RESULT_NAME
    temporary = directory / f".{RELOAD_RESULT_NAME}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(record), encoding="utf-8")
    temporary.replace(target)


def read_reload_result(directory: Path, *, pid: int) -> tuple[int, ReloadOutcome | None]:
    """The sequence number and outcome of the last reload of process ``pid``, or (0, None)."""
    try:
        record = json.loads((directory / RELOAD_RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, None
    if not isinstance(record, dict) or record.get("pid") != pid:
        return 0, None
    outcome = ReloadOutcome(bool(record.get("ok")), tuple(map(str, record.get("problems", ()))))
    return int(record.get("seq", 0)), outcome


def request_reload(
    pid: int,
    directory: Path,
    *,
    timeout_seconds: float,
    is_alive: Callable[[int], bool] | None = None,
) -> ReloadOutcome:
    """Send SIGHUP to the daemon ``pid`` and wait for the outcome it writes to ``directory``.

    Raises ``TimeoutError`` if none comes in time and ``ProcessLookupError`` if the daemon
    is gone. Polls the file: the reload runs on the daemon's control loop within a second.
    """
    alive = is_alive or _is_alive
    before, _ = read_reload_result(directory, pid=pid)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout_seconds
    while True:
        seq, outcome = read_reload_result(directory, pid=pid)
        if outcome is not None and seq > before:
            return outcome
        if not alive(pid):
            raise ProcessLookupError(f"process {pid} ended during the reload")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no reload result from process {pid} in {timeout_seconds:g} s")
        time.sleep(0.05)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
