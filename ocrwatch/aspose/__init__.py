"""The Aspose.OCR Cloud v5 boundary: the only code that knows the API's URLs and wire format.

``OcrApi`` is what the daemon types against; ``OcrClient`` is the real implementation over
HTTP, and a test double only has to satisfy the Protocol structurally.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from ocrwatch.aspose.client import DEFAULT_USER_AGENT, OcrClient
from ocrwatch.aspose.transport import Timeouts
from ocrwatch.model import Mode, RecognitionSettings, TaskResult

__all__ = ["DEFAULT_USER_AGENT", "OcrApi", "OcrClient", "Timeouts"]


class OcrApi(Protocol):
    """Submit files and follow their tasks; every failure is an ``ocrwatch.errors`` exception."""

    @property
    def is_trial(self) -> bool:
        """True without credentials: only ``Mode.IMAGE`` can be used."""
        ...

    def submit(self, mode: Mode, source: bytes | BinaryIO, settings: RecognitionSettings) -> str:
        """Upload ``source`` and return the task id; may raise ``SubmitOutcomeUnknown``."""
        ...

    def fetch(self, task_id: str, *, mode: Mode) -> TaskResult:
        """The task's state and, once completed, its decoded result files."""
        ...

    def status(self, task_id: str, *, mode: Mode) -> TaskResult:
        """The task's state without results, as cheaply as the mode allows."""
        ...

    def cancel(self, task_id: str, *, mode: Mode) -> None:
        """Drop the task from the service's queue."""
        ...
