"""A local server compatible with the Aspose.OCR Cloud v5 REST API: test double and backend.

``Emulator(EmulatorConfig(...))`` serves the token endpoint and the recognition resources over
real HTTP on a background thread; ``Faults`` injects failures (and the account's refusals);
``ResultShape`` varies the answers' shapes; ``EmulatorStats`` counts what happened.
``samples`` makes documents whose text the fixture recognizer knows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocrwatch.emulator.config import EmulatorConfig, Faults, ResultShape
    from ocrwatch.emulator.recognizer import (
        Box,
        FixtureRecognizer,
        Line,
        PageText,
        Recognition,
        Recognizer,
    )
    from ocrwatch.emulator.server import Emulator
    from ocrwatch.emulator.stats import EmulatorStats

# Loaded on first use, so that ``ocrwatch run`` (whose command line knows ``serve``) does not
# import the server, its recognizer and their libraries. Every module a long-running daemon
# imports keeps its identifiers in CPython's interned-string table; see docs/benchmarks.md
# ("What limits it") for why that table's size matters to the RSS over a long stream.
_EXPORTS = {
    "Box": "recognizer",
    "Emulator": "server",
    "EmulatorConfig": "config",
    "EmulatorStats": "stats",
    "Faults": "config",
    "FixtureRecognizer": "recognizer",
    "Line": "recognizer",
    "PageText": "recognizer",
    "Recognition": "recognizer",
    "Recognizer": "recognizer",
    "ResultShape": "config",
}

__all__ = [
    "Box",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStats",
    "Faults",
    "FixtureRecognizer",
    "Line",
    "PageText",
    "Recognition",
    "Recognizer",
    "ResultShape",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
