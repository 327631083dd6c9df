"""The streamed upload body: exact bytes, exact length up front, bounded memory, replayable."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import socket
import threading
import tracemalloc
from pathlib import Path

import pytest

from ocrwatch.aspose import OcrClient
from ocrwatch.aspose.body import Base64JsonBody
from ocrwatch.errors import InputFileError
from ocrwatch.model import Mode, RecognitionSettings

PREFIX = b'{"image":"'
SUFFIX = b'","settings":{"language":"English"}}'
BLOCK_BYTES = 16384  # what urllib3 asks for per read


def drain(body: Base64JsonBody, *, block_bytes: int = BLOCK_BYTES) -> bytes:
    parts = []
    while chunk := body.read(block_bytes):
        assert len(chunk) <= block_bytes
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("size_bytes", [0, 1, 2, 3, 4, 5, 49151, 49152, 49153, 100_001])
def test_body_is_the_json_document_with_the_file_in_base64(size_bytes: int) -> None:
    data = random.Random(size_bytes).randbytes(size_bytes)
    body = Base64JsonBody(io.BytesIO(data), prefix=PREFIX, suffix=SUFFIX)

    sent = drain(body, block_bytes=1000)

    assert len(body) == len(sent)
    document = json.loads(sent)
    assert base64.b64decode(document["image"], validate=True) == data
    assert document["settings"] == {"language": "English"}


def test_body_starts_at_the_files_current_position() -> None:
    source = io.BytesIO(b"HEADERpayload")
    source.seek(6)
    body = Base64JsonBody(source, prefix=PREFIX, suffix=SUFFIX)

    assert base64.b64decode(json.loads(drain(body))["image"]) == b"payload"


def test_a_rewound_body_sends_the_same_bytes_again() -> None:
    data = random.Random(7).randbytes(200_000)
    body = Base64JsonBody(io.BytesIO(data), prefix=PREFIX, suffix=SUFFIX)
    first = body.read(70_000)

    body.seek(0)
    again = drain(body)

    assert again.startswith(first)
    assert base64.b64decode(json.loads(again)["image"]) == data


def test_a_file_that_grows_is_cut_at_the_announced_length(tmp_path: Path) -> None:
    path = tmp_path / "growing.png"
    path.write_bytes(b"A" * 1000)
    with path.open("rb") as source:
        body = Base64JsonBody(source, prefix=PREFIX, suffix=SUFFIX)
        with path.open("ab") as writer:
            writer.write(b"B" * 5000)

        sent = drain(body)

    assert len(sent) == len(body)
    assert base64.b64decode(json.loads(sent)["image"]) == b"A" * 1000


def test_a_file_that_shrinks_fails_instead_of_sending_a_short_body(tmp_path: Path) -> None:
    path = tmp_path / "shrinking.png"
    path.write_bytes(b"A" * 200_000)
    with path.open("rb") as source:
        body = Base64JsonBody(source, prefix=PREFIX, suffix=SUFFIX)
        path.write_bytes(b"A" * 10)

        with pytest.raises(InputFileError, match="shrank"):
            drain(body)


def test_a_50_mb_file_streams_in_bounded_chunks_with_the_exact_length(tmp_path: Path) -> None:
    size_bytes = 50 * 1024 * 1024 + 1  # not a multiple of 3: the padding path too
    path = tmp_path / "big.tif"
    data = random.Random(50).randbytes(size_bytes)
    path.write_bytes(data)
    expected = hashlib.sha256(PREFIX + base64.b64encode(data) + SUFFIX).hexdigest()
    del data

    with path.open("rb") as source:
        body = Base64JsonBody(source, prefix=PREFIX, suffix=SUFFIX)
        assert len(body) == len(PREFIX) + 4 * ((size_bytes + 2) // 3) + len(SUFFIX)
        digest = hashlib.sha256()
        sent_bytes = 0
        tracemalloc.start()
        try:
            while chunk := body.read(BLOCK_BYTES):
                assert len(chunk) <= BLOCK_BYTES
                digest.update(chunk)
                sent_bytes += len(chunk)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert sent_bytes == len(body)
    assert digest.hexdigest() == expected
    # The whole body is ~67 MB; streaming keeps only a chunk or two alive at a time.
    assert peak_bytes < 1024 * 1024


def test_an_upload_announces_its_exact_length_and_is_never_chunked() -> None:
    """What reaches the socket: one Content-Length, no Transfer-Encoding, the whole body."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: dict[str, bytes] = {}

    def answer_one_request() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
            while len(body) < int(fields.get(b"Content-Length", b"0")):
                body += conn.recv(65536)
            received.update(head=head, body=body)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"t-1"\r\n')

    server = threading.Thread(target=answer_one_request)
    server.start()
    data = random.Random(3).randbytes(1_000_001)
    try:
        port = listener.getsockname()[1]
        with OcrClient(f"http://127.0.0.1:{port}", credentials=None) as client:
            task_id = client.submit(Mode.IMAGE, io.BytesIO(data), RecognitionSettings())
    finally:
        server.join(timeout=10)
        listener.close()

    assert task_id == "t-1"
    head = received["head"].lower()
    assert b"transfer-encoding" not in head
    assert f"content-length: {len(received['body'])}".encode() in head
    assert base64.b64decode(json.loads(received["body"])["image"]) == data
