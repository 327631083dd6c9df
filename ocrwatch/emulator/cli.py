"""``ocrwatch serve``: run the emulator in the foreground until SIGTERM or SIGINT.

The client secret never appears on the command line (it would show in ``ps``): it comes from
``--client-secret-file`` or the ``OCRWATCH_EMULATOR_CLIENT_SECRET`` environment variable, or
``--accept-any-credentials`` hands a token to any client. The first line written to ``out`` is
``listening on http://HOST:PORT``, so a parent process can read the chosen port.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

import structlog

from ocrwatch import formats
from ocrwatch.emulator.config import EmulatorConfig, Faults, ResultShape
from ocrwatch.errors import ConfigError
from ocrwatch.model import Credentials, ResultFormat

log = structlog.get_logger(__name__)

DESCRIPTION = (
    "Run a local server compatible with the Aspose.OCR Cloud v5 REST API (token endpoint, "
    "RecognizeImage/Trial/Label/Regions/Pdf, GetTaskStatus), with optional injected faults."
)
SECRET_ENV = "OCRWATCH_EMULATOR_CLIENT_SECRET"
_WAKE_SECONDS = 0.5  # how often the main thread looks at the stop flag between signals


def seconds_range(text: str) -> tuple[float, float]:
    """``"1"`` -> (1, 1); ``"0.5-2"`` -> (0.5, 2)."""
    low_text, _, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW-HIGH, not {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, not {text!r}")
    return low, high


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--client-id", default="test-client", help="the accepted client id")
    auth.add_argument(
        "--client-secret-file",
        type=Path,
        help=f"file holding the accepted client secret (or set {SECRET_ENV})",
    )
    auth.add_argument(
        "--accept-any-credentials",
        action="store_true",
        help="issue a token to any client id and secret",
    )
    auth.add_argument("--token-lifetime", type=float, default=3600.0, metavar="SECONDS")
    work = parser.add_argument_group("processing")
    work.add_argument(
        "--processing-seconds",
        type=seconds_range,
        default=(0.0, 0.0),
        metavar="SECONDS|LOW-HIGH",
        help="how long each task holds a slot, e.g. 1 or 0.5-2",
    )
    work.add_argument("--slots", type=int, default=4, help="tasks processed at once")
    work.add_argument("--retention-seconds", type=float, default=86400.0)
    work.add_argument("--max-pixels", type=int, default=formats.MAX_CLOUD_PAGE_PIXELS)
    work.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    faults = parser.add_argument_group("injected faults (probabilities per request or task)")
    for name in (
        "server-error",
        "too-many-requests",
        "connection-reset",
        "task-error",
        "task-stuck",
    ):
        faults.add_argument(f"--fault-{name}", type=fraction, default=0.0, metavar="P")
    faults.add_argument("--fault-retry-after", type=float, default=1.0, metavar="SECONDS")
    faults.add_argument(
        "--fault-token-lifetime",
        type=float,
        metavar="SECONDS",
        help="tokens stop working after this, whatever expires_in says",
    )
    faults.add_argument(
        "--fault-latency", type=seconds_range, default=(0.0, 0.0), metavar="SECONDS|LOW-HIGH"
    )
    account = parser.add_argument_group("the account and the service's limits")
    account.add_argument(
        "--quota-calls",
        type=int,
        metavar="N",
        help="answer every API call after the first N with --quota-status (quota exhausted)",
    )
    account.add_argument("--quota-status", type=int, choices=(402, 403), default=402)
    account.add_argument(
        "--plan-refused", action="store_true", help="answer every API call 403 (plan refusal)"
    )
    account.add_argument(
        "--max-upload-bytes",
        type=int,
        metavar="BYTES",
        help="answer a POST whose body is larger with 413 (no limit is documented)",
    )
    account.add_argument(
        "--forbidden-content",
        metavar="TEXT",
        help="answer 403 to a POST whose file holds TEXT (a rule refusing one file's content)",
    )
    shape = parser.add_argument_group("the shape of the results")
    shape.add_argument(
        "--result-type-name",
        type=type_name,
        action="append",
        default=[],
        metavar="FORMAT=TYPE",
        help="send FORMAT's results with this type string, e.g. JSON=Text (repeatable)",
    )
    shape.add_argument(
        "--json-object", action="store_true", help='JSON output as {"blocks": [...]}'
    )
    shape.add_argument(
        "--pages-apart", action="store_true", help="one Pdf and one Hocr result per page"
    )


def type_name(text: str) -> tuple[ResultFormat, str]:
    """``"JSON=Text"`` -> (ResultFormat.JSON, "Text")."""
    fmt_text, _, name = text.partition("=")
    try:
        fmt = ResultFormat(fmt_text.strip())
    except ValueError:
        allowed = ", ".join(f.value for f in ResultFormat)
        raise argparse.ArgumentTypeError(
            f"expected FORMAT=TYPE with FORMAT one of {allowed}, not {text!r}"
        ) from None
    if not name.strip():
        raise argparse.ArgumentTypeError(f"expected FORMAT=TYPE, not {text!r}")
    return fmt, name.strip()


def _credentials(args: argparse.Namespace) -> Credentials | None:
    if args.accept_any_credentials:
        return None
    if args.client_secret_file is not None:
        try:
            secret = args.client_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--client-secret-file: cannot read it: {exc.strerror}") from exc
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise ConfigError(
            f"no client secret: use --client-secret-file, set {SECRET_ENV}, "
            "or pass --accept-any-credentials"
        )
    return Credentials(args.client_id, secret)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    try:
        faults = Faults(
            server_error=args.fault_server_error,
            too_many_requests=args.fault_too_many_requests,
            retry_after_seconds=args.fault_retry_after,
            connection_reset=args.fault_connection_reset,
            task_error=args.fault_task_error,
            task_stuck=args.fault_task_stuck,
            token_lifetime_seconds=args.fault_token_lifetime,
            latency_seconds=args.fault_latency,
            quota_calls=args.quota_calls,
            quota_status=args.quota_status,
            plan_refused=args.plan_refused,
        )
        return EmulatorConfig(
            host=args.host,
            port=args.port,
            credentials=_credentials(args),
            token_lifetime_seconds=args.token_lifetime,
            processing_seconds=args.processing_seconds,
            slots=args.slots,
            retention_seconds=args.retention_seconds,
            faults=faults,
            seed=args.seed,
            max_pixels=args.max_pixels,
            max_upload_bytes=args.max_upload_bytes,
            forbidden_content=(args.forbidden_content.encode() if args.forbidden_content else None),
            result_shape=ResultShape(
                type_names=tuple(args.result_type_name),
                json_object=args.json_object,
                pages_apart=args.pages_apart,
            ),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def run(args: argparse.Namespace, *, out: TextIO) -> int:
    config = build_config(args)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        del frame
        stop.set()

    is_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if is_main_thread:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    # Only here: the daemon's command line imports this module for its arguments.
    from ocrwatch.emulator.server import Emulator  # noqa: PLC0415

    emulator = Emulator(config)
    try:
        try:
            emulator.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror}"
            ) from exc
        log.info(
            "emulator_serving",
            url=emulator.base_url,
            accepts_any_credentials=config.credentials is None,
            slots=config.slots,
        )
        out.write(f"listening on {emulator.base_url}\n")
        out.flush()
        while not stop.wait(_WAKE_SECONDS):
            pass
    finally:
        emulator.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("emulator_shutdown_complete")
    return 0
