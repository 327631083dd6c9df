"""ocrwatch: turn drop folders into text with the Aspose.OCR Cloud v5 API."""

from __future__ import annotations

__version__ = "0.1.0"
