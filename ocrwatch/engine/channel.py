"""Length-prefixed frames over a pair of pipes, with a deadline on every read.

Both ends use it: the daemon talks to a worker over the worker's stdin and a private copy of
its stdout. A frame is a 4-byte big-endian length and that many bytes; a message is one JSON
frame, optionally followed by one raw frame (the file's bytes), so images never go through
Base64. A read that passes its deadline raises ``TimeoutError``; a closed pipe (the other end
exited) raises ``EOFError``; a corrupt stream raises ``ValueError`` or ``TypeError``. Writes
are blocking: the daemon only writes to a worker that has said it is ready and is waiting for
a request, so a write cannot hang on a busy worker.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 31  # more than any file the service accepts; guards against garbage


def write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_message(fd: int, message: dict[str, Any], *, data: bytes | None = None) -> None:
    write_frame(fd, json.dumps(message, separators=(",", ":")).encode("utf-8"))
    if data is not None:
        write_frame(fd, data)


def read_frame(fd: int, *, deadline: float | None = None) -> bytes:
    """One frame's payload; ``deadline`` is a ``time.monotonic()`` value, None waits forever."""
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline=deadline))
    if length > MAX_FRAME_BYTES:
        raise EOFError(f"frame of {length} bytes announced: the stream is corrupt")
    return _read_exactly(fd, length, deadline=deadline)


def read_message(fd: int, *, deadline: float | None = None) -> dict[str, Any]:
    message = json.loads(read_frame(fd, deadline=deadline))
    if not isinstance(message, dict):
        raise TypeError("a message that is not a JSON object: the stream is corrupt")
    return message


def _read_exactly(fd: int, count: int, *, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining:
        if deadline is not None:
            wait_seconds = deadline - time.monotonic()
            if wait_seconds <= 0:
                raise TimeoutError("no answer before the deadline")
            poller = select.poll()  # not select(): it fails on descriptors above 1023
            poller.register(fd, select.POLLIN)
            if not poller.poll(max(1, round(wait_seconds * 1000))):
                raise TimeoutError("no answer before the deadline")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
