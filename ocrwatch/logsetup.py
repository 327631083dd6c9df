"""Configure structlog once for the whole process: console on a TTY, JSON otherwise.

Library logs (urllib3, watchdog) go through the same renderer via the stdlib bridge, so a
journal or a log file gets one format. Event names are stable snake_case facts with fields.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "console", "json"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def log_format(name: str) -> LogFormat:
    """Validate a format name from the command line or the config."""
    if name == "console":
        return "console"
    if name == "json":
        return "json"
    return "auto"


def configure(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog and stdlib logging to stderr in the chosen format."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=shared)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # urllib3 logs full URLs at debug level; those never carry secrets here (tokens travel in
    # headers and form bodies), but its connection chatter drowns the daemon's own events.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
