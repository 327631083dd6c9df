"""Tell systemd how the daemon is doing (sd_notify), with the standard library only.

Every call is a no-op outside systemd (no ``$NOTIFY_SOCKET``), and a failure to send is logged
at debug level and never raised: supervision must not be able to take the daemon down.
``WATCHDOG=1`` is sent only from the control loop, so a stuck loop gets restarted.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING datagrams to ``$NOTIFY_SOCKET``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading '@' and addressed with a NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._last_status = ""
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval_seconds: float | None = (
            int(watchdog_usec) / 1_000_000 if watchdog_usec.isdigit() else None
        )

    @property
    def is_enabled(self) -> bool:
        return bool(self._address)

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        if self.watchdog_interval_seconds is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode("utf-8", errors="replace"))
        except OSError as exc:
            log.debug("sd_notify_failed", error=str(exc))
