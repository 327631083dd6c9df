"""The engine's exceptions, placed in the project's tree by what the caller does next.

- ``EngineInputError``: this file cannot be recognised as it is (not an image or PDF, damaged,
  more pixels than the limit); permanent.
- ``EngineCrashed`` / ``EngineTimeout``: the worker died or ran out of time on this file; the
  worker has been replaced, so the next file is unaffected; permanent for this file.
- ``UnsupportedLanguage``: the local models cannot read the configured language; fix the
  configuration (or use Aspose Cloud for that language).
- ``EngineUnavailable``: the worker could not start (the ``engine`` extra is not installed,
  a model file is missing); nothing will work until that is fixed.
- ``EngineStopped``: the pool was stopped while the call waited or ran.
"""

from __future__ import annotations

from collections.abc import Iterable

from ocrwatch.errors import ConfigError, ExitCode, OcrwatchError, PermanentError


class EngineError(OcrwatchError):
    """Base of everything the local engine raises on purpose."""


class EngineInputError(EngineError, PermanentError):
    """The file cannot be recognised as it is; the message says why."""


class EngineCrashed(EngineError, PermanentError):
    """The worker process died while recognising this file (it has been restarted)."""


class EngineTimeout(EngineError, PermanentError):
    """A page took longer than the per-page timeout; the worker was killed and restarted."""


class EngineUnavailable(EngineError):
    """The worker cannot start: packages or model files are missing, or it fails at start."""

    exit_code = ExitCode.UNAVAILABLE


class EngineStopped(EngineError):
    """The pool is stopped (or was stopped while this call was running)."""


class UnsupportedLanguage(EngineError, ConfigError):
    """The local models cannot read this language."""

    def __init__(self, language: str, *, supported: Iterable[str]) -> None:
        self.language = language
        shown = ", ".join(sorted(supported))
        super().__init__(
            f"language: the local OCR engine cannot read {language!r}; it reads {shown}. "
            "Use the Aspose Cloud service for other languages."
        )
