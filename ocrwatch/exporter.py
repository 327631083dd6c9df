"""Publish rendered metrics: an HTTP listener for Prometheus, and a node-exporter textfile.

The listener runs on its own thread and only ever calls ``render``, which must be safe to
call from any thread (``Metrics.render`` takes its lock). It answers ``GET /metrics`` and
nothing else of interest; it never reads a request body, so a slow or hostile client can
hold one handler thread, never the daemon. Stop it with ``stop`` (it joins its thread).

The textfile is replaced atomically (a temporary file in the same folder, renamed over the
old one), so node-exporter never reads half a file; a stale temporary file left by a crash is
overwritten by the next write. It is not fsynced: it is rewritten every few seconds for
months, and a flush to disk each time would wear flash storage to keep numbers that the next
write replaces anyway (after a power cut the file may be stale or empty until then).

Process metrics (resident memory, CPU seconds, open and maximum file descriptors, start
time) come from ``prometheus_client``'s ``ProcessCollector``, rendered by its own exposition
and appended to the daemon's families. The library is imported only when metrics are on.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_JOIN_SECONDS = 5.0

Render = Callable[[], str]


class MetricsListener:
    """Serves ``render()`` at ``http://host:port/metrics`` until ``stop``."""

    def __init__(self, host: str, port: int, *, render: Render) -> None:
        self._render = render
        handler = _handler_for(render)
        server_class = _V6Server if ":" in host else _V4Server
        self._server = server_class((host, port), handler)  # binds now: errors surface here
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="metrics-listener",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        log.info(
            "metrics_listening",
            host=host,
            port=port,
            url=f"http://{_url_host(host)}:{port}/metrics",
        )

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(_JOIN_SECONDS)
        self._server.server_close()


class _V4Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a stuck scraper never holds the process at exit
    allow_reuse_address = True


class _V6Server(_V4Server):
    address_family = socket.AF_INET6


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _handler_for(render: Render) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "ocrwatch"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, render().encode("utf-8"), CONTENT_TYPE)
            elif path == "/":
                self._answer(200, b"ocrwatch: metrics at /metrics\n", "text/plain")
            else:
                self._answer(404, b"not found: try /metrics\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics_request", client=self.client_address[0], line=format % args)

    return Handler


class ProcessMetrics:
    """This process's memory, CPU time and file descriptors, read from ``/proc`` at each render.

    ``prefix`` names them ``<prefix>_process_...``: node-exporter's textfile collector needs
    that, since it exports bare ``process_...`` families about itself and refuses duplicates.
    """

    def __init__(self, *, prefix: str = "") -> None:
        import prometheus_client  # noqa: PLC0415 - loaded only when metrics are enabled

        self._registry = prometheus_client.CollectorRegistry(auto_describe=False)
        prometheus_client.ProcessCollector(namespace=prefix, registry=self._registry)
        self._generate = prometheus_client.generate_latest

    def render(self) -> str:
        return self._generate(self._registry).decode("utf-8")


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (readable by node-exporter: mode 0644)."""
    temporary = path.with_name(f".{path.name}.ocrwatch-tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)
    try:
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
