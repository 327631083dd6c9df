"""The HTTP/1.1 server: keep-alive connections, request bodies, delays and abrupt resets.

Built on the stdlib ``ThreadingHTTPServer``: one daemon thread per connection, tracked so
that ``close()`` can cut every open connection (a keep-alive client must see the outage too)
and join the threads. Bodies are read by ``Content-Length`` or ``Transfer-Encoding: chunked``
before the API sees the request, so an answer never leaves unread bytes on a kept-alive
connection. A reset sets ``SO_LINGER`` to zero and closes, so the peer gets an RST and no
response. Replies are written with ``TCP_NODELAY``: keep-alive request/response pairs would
otherwise wait on delayed ACKs.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from ocrwatch.emulator.api import PROBLEM_JSON, Api, Reply, Request
from ocrwatch.emulator.wire import problem

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 512 * 1024 * 1024  # no limit is documented; this only guards memory
_JOIN_SECONDS = 5.0


class _BodyError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HttpServer

    def version_string(self) -> str:
        return "ocrwatch-emulator"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track_connection(self.connection, is_open=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track_connection(self.connection, is_open=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are counted in stats; stderr noise would drown test output

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(
                Reply(
                    exc.status,
                    problem(exc.status, detail=str(exc), instance=self.path.split("?", 1)[0]),
                    PROBLEM_JSON,
                )
            )
            return
        except (OSError, ValueError):
            self.close_connection = True  # the client went away mid-body
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(method=self.command, target=self.path, headers=headers, body=body)
        try:
            reply = self.server.api.handle(request)
        except Exception:  # the one broad catch per request: answer 500, keep serving
            log.exception("emulator_request_crashed", method=self.command)
            reply = Reply(
                500,
                problem(500, detail="Internal server error", instance=self.path.split("?", 1)[0]),
                PROBLEM_JSON,
            )
        if reply.delay_seconds > 0 and self.server.stopping.wait(reply.delay_seconds):
            self.close_connection = True  # stopping: the connection is being cut anyway
            return
        if reply.is_reset:
            self._reset()
        else:
            self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BodyError(400, "Content-Length is not a number") from None
        if length < 0:
            raise _BodyError(400, "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ValueError("the body ended early")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "Malformed chunked body") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ValueError("the body ended early")
            chunks.append(chunk)
            self.rfile.readline(8)  # the CRLF after each chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields: not used
        return b"".join(chunks)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client is gone; nothing left to tell it

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            return
        self.rfile.close()
        self.connection.close()  # with linger 0 the kernel sends RST instead of FIN


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that can cut its open connections and join its threads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connection_threads: set[threading.Thread] = set()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _Handler)

    def serve_until_closed(self) -> None:
        """Accept connections until ``stop_accepting()``, which wakes this loop at once.

        ``serve_forever`` would notice a shutdown only at its next poll; every stop (and
        every test using the emulator) would pay that interval.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            request, address = self.get_request()
        except OSError:
            return  # the client gave up before it was accepted
        try:
            self.process_request(request, address)
        except RuntimeError:  # no thread could be started: refuse this connection only
            log.warning("emulator_connection_refused", reason="thread_start_failed")
            self.shutdown_request(request)

    def track_connection(self, connection: socket.socket, *, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="emulator-http-connection",
            daemon=True,
        )
        with self._lock:
            self._connection_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connection_threads.discard(threading.current_thread())

    def stop_accepting(self) -> None:
        """Make ``serve_until_closed`` return; also cuts short every pending reply delay."""
        self.stopping.set()
        self._wake_writer.send(b"\0")

    def close(self) -> None:
        """Once the accept loop has returned: close, cut every connection, join their threads."""
        self.stopping.set()
        self.server_close()
        self._wake_reader.close()
        self._wake_writer.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._connection_threads)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_JOIN_SECONDS)
