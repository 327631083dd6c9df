"""Stream a recognition request body, Base64-encoding the source file as it is sent.

The body is ``prefix + base64(file bytes) + suffix``, where the prefix opens the JSON string
of ``image`` and the suffix closes it and carries the settings. Its length is known before a
byte is read (``4 * ceil(n / 3)`` for the Base64 part), so requests sends it with an exact
``Content-Length`` rather than chunked, and urllib3 reads it block by block: memory stays at
one raw chunk plus its encoding, however large the file.

Hazards: the source must not change while it is sent. A file that grows is cut at the size
measured when the body was built; one that shrinks raises ``InputFileError`` instead of
sending a body shorter than its ``Content-Length``. ``rewind()`` (or ``seek(0)``) replays the
body for a retry.
"""

from __future__ import annotations

import base64
import io
import os
from typing import BinaryIO

from ocrwatch.errors import InputFileError

# A multiple of 3, so every chunk except the last encodes without padding.
RAW_CHUNK_BYTES = 3 * 16 * 1024


def encoded_length(size_bytes: int) -> int:
    """Length of the Base64 encoding of ``size_bytes`` bytes, padding included."""
    return 4 * ((size_bytes + 2) // 3)


class Base64JsonBody(io.RawIOBase):
    """A read-only, rewindable file object: ``prefix``, the source in Base64, ``suffix``."""

    def __init__(self, source: BinaryIO, *, prefix: bytes, suffix: bytes) -> None:
        super().__init__()
        self._source = source
        self._prefix = prefix
        self._suffix = suffix
        self._source_start = source.tell()
        self._source_size_bytes = source.seek(0, os.SEEK_END) - self._source_start
        source.seek(self._source_start)
        self._length = len(prefix) + encoded_length(self._source_size_bytes) + len(suffix)
        self._position = 0
        self._pending = b""  # encoded bytes produced but not yet handed out
        self._pending_offset = 0
        self._source_consumed_bytes = 0
        self._suffix_queued = False
        self._queue_prefix()

    @property
    def source_size_bytes(self) -> int:
        return self._source_size_bytes

    def __len__(self) -> int:
        # requests reads the length from here and sets Content-Length; no chunked encoding.
        return self._length

    def __repr__(self) -> str:
        return f"<Base64JsonBody source_bytes={self._source_size_bytes} length={self._length}>"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Only rewinding to the start (or staying put) is supported: enough for a retry."""
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._position + offset
        elif whence == os.SEEK_END:
            target = self._length + offset
        else:
            raise ValueError(f"invalid whence: {whence}")
        if target == self._position:
            return self._position
        if target != 0:
            raise io.UnsupportedOperation("Base64JsonBody can only seek back to the start")
        self.rewind()
        return 0

    def rewind(self) -> None:
        self._source.seek(self._source_start)
        self._position = 0
        self._source_consumed_bytes = 0
        self._suffix_queued = False
        self._queue_prefix()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view):
            if self._pending_offset >= len(self._pending) and not self._refill():
                break
            take = min(len(view) - written, len(self._pending) - self._pending_offset)
            view[written : written + take] = self._pending[
                self._pending_offset : self._pending_offset + take
            ]
            self._pending_offset += take
            written += take
        self._position += written
        return written

    def _queue_prefix(self) -> None:
        self._pending = self._prefix
        self._pending_offset = 0

    def _refill(self) -> bool:
        """Queue the next encoded chunk (or the suffix); False once everything was handed out."""
        remaining = self._source_size_bytes - self._source_consumed_bytes
        if remaining > 0:
            raw = self._read_source(min(RAW_CHUNK_BYTES, remaining))
            self._source_consumed_bytes += len(raw)
            self._pending = base64.b64encode(raw)
        elif not self._suffix_queued:
            self._suffix_queued = True
            self._pending = self._suffix
        else:
            return False
        self._pending_offset = 0
        return True

    def _read_source(self, size_bytes: int) -> bytes:
        # A raw file may return short reads; only the true end of the data may be short.
        parts: list[bytes] = []
        wanted = size_bytes
        while wanted > 0:
            try:
                part = self._source.read(wanted)
            except OSError as exc:
                # Not a network failure: the upload's outcome is known (nothing usable was sent).
                raise InputFileError(f"the file could not be read while uploading: {exc}") from exc
            if not part:
                raise InputFileError(
                    "the file shrank while it was being uploaded; was it still being written?"
                )
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)
