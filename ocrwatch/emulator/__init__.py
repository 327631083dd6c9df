"""A local server compatible with the Aspose.OCR Cloud v5 REST API: test double and backend.

``Emulator(EmulatorConfig(...))`` serves the token endpoint and the recognition resources over
real HTTP on a background thread; ``Faults`` injects failures; ``EmulatorStats`` counts what
happened. ``samples`` makes documents whose text the fixture recognizer knows.
"""

from __future__ import annotations

from ocrwatch.emulator.config import EmulatorConfig, Faults
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
]
