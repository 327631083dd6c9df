"""Read the operability settings: the ``metrics`` section and each inbox's ``hooks``.

Hazards guarded here rather than at run time:

- A metrics listener on a non-loopback address exposes inbox names and error classes to the
  network; it is allowed (a scraper may live elsewhere) but warned about. An address given as
  a bare port binds to 127.0.0.1.
- A webhook travels with file paths and error messages in its body, so its URL follows the
  rule of the service URL: https, or plain http only to this machine.
- Hook commands are argv lists run without a shell, so no quoting or injection through file
  names is possible; a command given as a path must exist and be executable.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from ocrwatch.config.keys import _HOOK_KEYS, _METRICS_KEYS
from ocrwatch.config.profiles import HookConfig, MetricsConfig
from ocrwatch.config.reader import _kind, _Section, _section

DEFAULT_METRICS_HOST = "127.0.0.1"


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (brackets allowed)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_metrics(top: _Section, warnings: list[str]) -> MetricsConfig:
    metrics = _section(top, "metrics", allowed=_METRICS_KEYS)
    listen = _read_listen(metrics, warnings)
    textfile = metrics.path("textfile")
    if textfile is not None:
        if not textfile.parent.is_dir():
            metrics.report("textfile", f"the folder {textfile.parent} does not exist")
        elif textfile.suffix != ".prom":
            warnings.append(
                f"metrics.textfile: {textfile.name} does not end in .prom; "
                "node-exporter's textfile collector only reads *.prom files"
            )
    return MetricsConfig(
        listen=listen,
        textfile=textfile,
        interval_seconds=metrics.number("interval_seconds", 5.0),
    )


def _read_listen(metrics: _Section, warnings: list[str]) -> tuple[str, int] | None:
    """``"host:port"``, ``"[::1]:port"``, ``":port"``, ``"port"`` or a bare integer."""
    value = metrics.values.get("listen")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        metrics.report("listen", f"expected host:port such as 127.0.0.1:19464, got {_kind(value)}")
        return None
    text = str(value).strip()
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_METRICS_HOST
    if not port_text.isdigit() or int(port_text) > 65535:
        metrics.report("listen", f"{text!r}: expected host:port such as 127.0.0.1:19464")
        return None
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            metrics.report("listen", f"{host!r} is not an IP address (or localhost)")
            return None
    if not is_loopback_host(host):
        warnings.append(
            f"metrics.listen: {host} is reachable from other machines; the metrics name your "
            "inboxes and error classes (bind 127.0.0.1 and scrape through a proxy if unsure)"
        )
    return host, int(port_text)


def _read_hooks(inbox: _Section) -> HookConfig:
    raw = inbox.values.get("hooks")
    if raw is None:
        return HookConfig()
    hooks = _section(inbox, "hooks", allowed=_HOOK_KEYS)
    return HookConfig(
        on_success=_read_command(hooks, "on_success"),
        on_failure=_read_command(hooks, "on_failure"),
        webhook_url=_read_webhook(hooks),
        timeout_seconds=hooks.number("timeout_seconds", 30.0),
    )


def _read_command(hooks: _Section, key: str) -> tuple[str, ...]:
    value = hooks.values.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        hooks.report(
            key, f"expected a command as a list of arguments (no shell), got {_kind(value)}"
        )
        return ()
    program = value[0]
    if not program:
        hooks.report(key, "the command (first item) is empty")
        return ()
    if "/" in program:
        # A path: relative to the config file, like every other path; a bare name uses $PATH.
        resolved = hooks.base_dir / Path(program).expanduser()
        if not resolved.is_file():
            hooks.report(key, f"{resolved} does not exist")
        elif not os.access(resolved, os.X_OK):
            hooks.report(key, f"{resolved} is not executable: chmod +x it")
        program = str(resolved)
    return (program, *value[1:])


def _read_webhook(hooks: _Section) -> str | None:
    url = hooks.text("webhook")
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))):
        return url
    hooks.report(
        "webhook",
        f"{url!r} must be an https:// URL (http:// only for localhost, 127.0.0.0/8 or ::1): "
        "file paths and error messages travel over it",
    )
    return None
