"""The worker process: load the models once, then recognise one file per request, forever.

Started by ``EnginePool`` as ``python -m ocrwatch.engine.worker --threads N --max-pixels M``.
It sets ``ORT_DISABLE_TELEMETRY=1`` before anything can import onnxruntime (the pool also
puts it in the worker's environment, so it holds from the first instruction). The protocol
runs over stdin and a private copy of stdout; file descriptor 1 is then pointed at stderr, so
a library that prints cannot corrupt the stream.

Messages (see ``channel``): the worker says ``ready`` once the models are loaded, or
``unavailable`` if they cannot be; then for each request (a JSON frame with the options and
a raw frame with the file) it sends one ``page`` message per page, then ``done``, or an
``error`` (``input: true`` when the file is at fault). It exits when stdin closes. SIGINT
and SIGTERM are ignored: the daemon decides when a worker ends (closing stdin, or SIGKILL),
so a Ctrl-C or a service stop never cuts a recognition short behind the daemon's back.
"""

from __future__ import annotations

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before onnxruntime can be imported, always

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING

from ocrwatch.engine import channel
from ocrwatch.engine.failures import EngineInputError
from ocrwatch.engine.values import EngineOptions

if TYPE_CHECKING:
    from ocrwatch.engine.reader import PageReader

REQUEST_FD = 0
log = logging.getLogger("ocrwatch.engine.worker")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ocrwatch.engine.worker")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-pixels", type=int, required=True)
    return parser.parse_args(argv)


def _load_reader(threads: int) -> PageReader:
    # Imported here, not at the top: an engine that is not installed must become a message to
    # the daemon, not a traceback before the protocol starts.
    from ocrwatch.engine.reader import PageReader  # noqa: PLC0415

    return PageReader(threads=threads)


def _serve(reader: PageReader, *, reply_fd: int, max_pixels: int) -> None:
    while True:
        try:
            request = channel.read_message(REQUEST_FD)
            data = channel.read_frame(REQUEST_FD)
        except EOFError:
            return
        options = EngineOptions.from_wire(request["options"])
        try:
            for result in reader.read_file(data, options, max_pixels=max_pixels):
                channel.write_message(reply_fd, {"kind": "page", "page": result.to_wire()})
        except EngineInputError as exc:
            channel.write_message(reply_fd, {"kind": "error", "input": True, "message": str(exc)})
        except Exception as exc:  # the one broad catch per unit of work: one file
            log.exception("engine_file_failed")
            message = f"the OCR engine failed on this file: {type(exc).__name__}: {exc}"
            channel.write_message(reply_fd, {"kind": "error", "input": False, "message": message})
        else:
            channel.write_message(reply_fd, {"kind": "done"})


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="ocrwatch-engine-worker[%(process)d] %(levelname)s %(name)s %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        reader = _load_reader(arguments.threads)
    except (ImportError, OSError) as exc:
        message = f"the local OCR engine cannot start: {type(exc).__name__}: {exc}"
        channel.write_message(reply_fd, {"kind": "unavailable", "message": message})
        return 1
    channel.write_message(reply_fd, {"kind": "ready", "pid": os.getpid()})
    try:
        _serve(reader, reply_fd=reply_fd, max_pixels=arguments.max_pixels)
    except BrokenPipeError:
        return 0  # the daemon went away; nobody is left to answer
    return 0


if __name__ == "__main__":
    sys.exit(main())
