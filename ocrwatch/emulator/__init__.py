"""A local server compatible with the Aspose.OCR Cloud v5 REST API: test double and backend."""

from __future__ import annotations
