"""The local OCR engine: RapidOCR with its bundled PP-OCR models, run in worker processes.

``EnginePool(...).recognize(data, EngineOptions(...))`` reads an image or a PDF and returns an
``EngineResult``: per page, lines of text with pixel boxes, in reading order. Recognition runs
in separate worker processes (``pool``/``process``/``worker``), so the daemon never imports
onnxruntime, keeps its memory small, and survives a crash or a pathological file: each page
has a timeout, images are checked against a pixel limit before decoding, and a dead worker is
replaced. Nothing here uses the network: the models are the files inside the ``rapidocr``
wheel, named by path.

Telemetry: onnxruntime records telemetry at import unless ``ORT_DISABLE_TELEMETRY=1`` is set
before it is imported. The worker's environment always has it (the pool sets it when it
starts a worker, and the worker sets it again before any import).

Aspose settings (see ``EngineOptions``): honoured are ``Rotate`` (right angles exactly, other
angles by resampling; a page is then read as turned, never turned again), ``makeSkewCorrect``
(the page is straightened by the skew estimated from its text rows, up to 15 degrees; lines
are always grouped along the skew of the detected boxes), ``makeUpsampling`` (a page whose
text comes out smaller than 20 px is enlarged up to 2x and read again), ``makeBinarization``
(Otsu's threshold), ``makeContrastCorrection`` (CLAHE), ``regions`` (each rectangle cut out
and read on its own, in order) and ``dsrMode`` as ``find_blocks`` (columns and blocks found
from the detected text and read one after another, ``blocks``; off, lines run straight across
the page). With ``Rotate`` 0 a page lying on its side or upside down is turned upright
(``orientation``; it costs nothing on an upright page). A page too large for the detector to
see its text is read in tiles (``tiles``). Accepted and ignored: ``dsrConfidence`` (every
line found is reported) and ``makeSpellCheck`` (no dictionaries); ``language`` selects nothing
(one multilingual model) but must be one of ``supported_languages()``.

This package imports only the project's core modules; install the ``engine`` extra to run it.
"""

from __future__ import annotations

from ocrwatch.engine.capabilities import (
    check_language,
    engine_name,
    missing_modules,
    supported_languages,
)
from ocrwatch.engine.failures import (
    EngineCrashed,
    EngineError,
    EngineInputError,
    EngineStopped,
    EngineTimeout,
    EngineUnavailable,
    UnsupportedLanguage,
)
from ocrwatch.engine.pool import DEFAULT_MAX_PIXELS, EnginePool, default_workers
from ocrwatch.engine.values import Box, EngineOptions, EngineResult, PageResult, TextLine

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Box",
    "EngineCrashed",
    "EngineError",
    "EngineInputError",
    "EngineOptions",
    "EnginePool",
    "EngineResult",
    "EngineStopped",
    "EngineTimeout",
    "EngineUnavailable",
    "PageResult",
    "TextLine",
    "UnsupportedLanguage",
    "check_language",
    "default_workers",
    "engine_name",
    "missing_modules",
    "supported_languages",
]
