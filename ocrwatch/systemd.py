"""Tell systemd how the daemon is doing (sd_notify), with the standard library only.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Every call is a no-op
outside systemd, and a failure to send is logged at debug level and never raised:
supervision must not be able to take the daemon down.

Hazards guarded here:
- ``WATCHDOG=1`` is sent only from the control loop, so a stuck loop gets restarted; it is
  enabled only when ``$WATCHDOG_USEC`` is set and ``$WATCHDOG_PID`` (if set) is this process.
- A child that inherited the environment, or a copy of this object across ``fork()``, must
  not speak for the daemon: sends from any other pid than the creator's are dropped.
- ``STATUS=`` text is one line: a newline would start a new (bogus) assignment.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

STATUS_MAX_CHARS = 1024  # systemctl status shows one line; keep the datagram small
WATCHDOG_PINGS_PER_INTERVAL = 4  # a busy loop pings at most this often per WatchdogSec


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
        self._last_ping_at: float | None = None
        self.watchdog_interval_seconds = watchdog_interval_seconds(env, pid=self._pid)

    @property
    def is_enabled(self) -> bool:
        """Whether the process runs under a service manager that listens."""
        return self._address is not None

    def ready(self) -> None:
        """Start-up is complete: config, store, reconciliation and observers are all up."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """The one-line status ``systemctl status`` shows; sent only when it changes."""
        line = " ".join(text.split())[:STATUS_MAX_CHARS]
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
