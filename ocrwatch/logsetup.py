"""Configure logging once for the whole process: console, JSON lines, or native journal fields.

structlog is routed through the standard library (``LoggerFactory`` + ``ProcessorFormatter``),
so library logs (urllib3, watchdog) share the level filter and the output. Only the final
handler depends on the format:

- ``console``: ``ConsoleRenderer`` on stderr, for a person at a terminal;
- ``json``: one JSON object per line on stderr; under systemd that lands in the journal as is;
- ``journal``: each record goes to journald with its structlog keys as upper-case fields
  (``journalctl TASK_ID=...``), through a sender the caller passes in
  (``ocrwatch.systemd.JournalWriter``, the journal's native protocol, no C extension).
- ``auto``: ``journal`` when stderr is the journal stream systemd set up (``$JOURNAL_STREAM``)
  and the journal can be reached, else ``console`` on a TTY, else ``json``.

When stderr is the journal stream but the lines go there as text (``json`` or ``console``, or
a record the journal refused), each line starts with its syslog priority (``<4>``), which
journald strips and records as ``PRIORITY``: ``journalctl -p warning`` works either way.

Hazards: a log call must never raise, so a record the journal refuses is written as JSON to
stderr instead. A journal field name is upper-case letters, digits and ``_``; a leading ``_``
is reserved for fields journald sets itself, so keys are mapped onto that alphabet, and a key
that would collide with a field systemd gives a meaning (``JOB_ID``, ``UNIT``, ``ERRNO``...)
or with the fixed fields gets an ``OCRWATCH_`` prefix. Secrets are never logged (nothing here
filters them: callers never pass them).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Literal, Protocol, TextIO

import structlog

LogFormat = Literal["auto", "console", "json", "journal"]
Output = Literal["console", "json", "journal"]

SYSLOG_IDENTIFIER = "ocrwatch"
RESERVED_FIELD_PREFIX = "OCRWATCH_"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip
_FORMATS: dict[str, LogFormat] = {
    "auto": "auto",
    "console": "console",
    "json": "json",
    "journal": "journal",
}
# Keys the journal records in its own way (PRIORITY, its own timestamp) or that only carry
# structlog's bookkeeping.
_NOT_FIELDS = frozenset({"event", "level", "timestamp", "_record", "_from_structlog"})
# The fields every record carries, and those systemd itself writes with a meaning of its own
# (systemd.journal-fields(7)): `journalctl -u ocrwatch JOB_ID=3` must not match systemd's job
# messages. An event key of one of these names is prefixed, not dropped.
_RESERVED_FIELDS = frozenset(
    {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
     "MESSAGE_ID", "ERRNO", "INVOCATION_ID", "USER_INVOCATION_ID", "TID", "DOCUMENTATION",
     "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW", "UNIT", "USER_UNIT",
     "JOB_ID", "JOB_TYPE", "JOB_RESULT", "UNIT_RESULT", "EXIT_CODE", "EXIT_STATUS",
     "OBJECT_PID", "COREDUMP_UNIT", "COREDUMP_USER_UNIT"}
)  # fmt: skip
_FIELD_NAME_MAX = 64  # journald's limit


class JournalSend(Protocol):
    """Sends one journal entry (``ocrwatch.systemd.JournalWriter``); raises ``OSError``."""

    def __call__(self, fields: Mapping[str, str], /) -> object: ...


def log_format(name: str) -> LogFormat:
    """Validate a format name from the command line or the config (unknown means ``auto``)."""
    return _FORMATS.get(name, "auto")


def is_journal_stream(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Whether ``stream`` is the journal connection systemd made (``$JOURNAL_STREAM=dev:inode``).

    The variable is inherited by child processes whose stderr may go elsewhere, so it counts
    only if it names the very file ``stream`` writes to.
    """
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is a ValueError: no file behind it
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def resolve_format(
    fmt: LogFormat, *, stream: TextIO, environ: Mapping[str, str], has_journal: bool
) -> Output:
    """The output ``fmt`` stands for here; ``journal`` without a journal falls back to JSON."""
    if fmt == "auto":
        if has_journal and is_journal_stream(environ, stream):
            return "journal"
        return "console" if stream.isatty() else "json"
    if fmt == "journal" and not has_journal:
        return "json"
    return fmt


def use_colors(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colours on a terminal, unless ``NO_COLOR`` (no-color.org) or ``TERM=dumb``; ``FORCE_COLOR``
    turns them on anywhere. structlog reads these only for its default configuration."""
    if environ.get("NO_COLOR", ""):
        return False
    if environ.get("FORCE_COLOR", ""):
        return True
    return stream.isatty() and environ.get("TERM", "") != "dumb"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 7 debug, 6 info, 4 warning, 3 error, 2 critical."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_field_name(key: str) -> str:
    """``task_id`` -> ``TASK_ID``; anything outside ``[A-Z0-9_]`` becomes ``_``."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F_" + name
    return name[:_FIELD_NAME_MAX]


def journal_fields(event_dict: Mapping[str, object], *, levelno: int) -> dict[str, str]:
    """The journal entry of one event: MESSAGE is the event name, each key a field."""
    fields = {
        "MESSAGE": str(event_dict.get("event", "")),
        "PRIORITY": str(syslog_priority(levelno)),
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
    }
    for key, value in event_dict.items():
        if key in _NOT_FIELDS:
            continue
        name = journal_field_name(key)
        if name in _RESERVED_FIELDS:
            name = RESERVED_FIELD_PREFIX + name
        fields[name] = value if isinstance(value, str) else str(value)
    return fields


class JournalFieldsHandler(logging.Handler):
    """Sends each record to the journal; a record it cannot send goes to ``fallback``."""

    def __init__(self, send: JournalSend, *, fallback: logging.Handler) -> None:
        super().__init__()
        self._send = send
        self._fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict) and hasattr(record, "_logger"):
            # From structlog: wrap_for_formatter passed the event dict as the message.
            event: dict[str, object] = {str(k): v for k, v in record.msg.items()}
        else:  # from another library through plain logging
            event = {"event": record.getMessage()}
            if record.exc_info:
                event["exception"] = logging.Formatter().formatException(record.exc_info)
        event.setdefault("logger", record.name)
        fields = journal_fields(event, levelno=record.levelno)
        fields.update(
            CODE_FILE=record.pathname, CODE_LINE=str(record.lineno), CODE_FUNC=record.funcName
        )
        try:
            self._send(fields)
        except (OSError, ValueError):
            self._fallback.emit(record)

    def close(self) -> None:
        close = getattr(self._send, "close", None)  # the writer's socket, if it has one
        if callable(close):
            close()
        super().close()


class PriorityPrefixHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Text lines on the journal's stream, each led by ``<N>``, its syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def configure(
    level: str = "info",
    fmt: LogFormat = "auto",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    journal_send: JournalSend | None = None,
) -> Output:
    """Route structlog and stdlib logging to ``stream`` (stderr) or the journal; safe to repeat.

    ``journal_send`` sends entries to the journal (``ocrwatch.systemd.journal_writer()``;
    None when journald cannot be reached). Returns the output chosen.
    """
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    send = journal_send
    output = resolve_format(fmt, stream=out, environ=env, has_journal=send is not None)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=use_colors(out, env))
        if output == "console"
        else structlog.processors.JSONRenderer(default=str)  # a Path as its text, not its repr
    )
    stream_handler = (
        PriorityPrefixHandler(out) if is_journal_stream(env, out) else logging.StreamHandler(out)
    )
    stream_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    handler: logging.Handler = stream_handler
    if output == "journal" and send is not None:
        handler = JournalFieldsHandler(send, fallback=stream_handler)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, JournalFieldsHandler):
            old.close()  # its writer's socket
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # urllib3 logs full URLs at debug level; those never carry secrets here (tokens travel in
    # headers and form bodies), but its connection chatter drowns the daemon's own events.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
    if fmt == "journal" and output != "journal":
        structlog.get_logger(__name__).warning(
            "journal_unavailable",
            reason="journald is not listening on its socket",
            using=output,
        )
    return output
