"""Refuse before paying for the API what the service would refuse anyway.

A pure decision on the facts ``probe.inspect`` read from a settled file and the inbox's
profile: an unknown format, an encrypted PDF, a PDF outside an image inbox or in trial mode,
a multi-page TIFF, or a mode trial mode cannot use. ``ocrwatch explain`` shows the same
verdict the daemon would reach.
"""

from __future__ import annotations

from ocrwatch import probe
from ocrwatch.config import InboxConfig
from ocrwatch.model import ErrorClass, Mode


def preflight_problem(
    facts: probe.FileFacts, inbox: InboxConfig, *, trial: bool
) -> tuple[str | None, ErrorClass]:
    """Why the file would be refused (None if it would not), and the error class to file it as."""
    kind = facts.kind
    if kind is probe.FileKind.UNKNOWN:
        return "not a supported image or PDF (by its content)", ErrorClass.UNREADABLE
    if kind is probe.FileKind.PDF:
        if facts.is_encrypted:
            return "encrypted PDF: decrypt it first", ErrorClass.UNREADABLE
        if inbox.mode is not Mode.IMAGE:
            return f"PDFs can only be recognised in image inboxes (this one is {inbox.mode})", (
                ErrorClass.UNSUPPORTED
            )
        if trial:
            return "PDFs need credentials: RecognizePdf has no trial mode", ErrorClass.UNSUPPORTED
    elif kind is probe.FileKind.TIFF and (facts.page_count or 1) > 1:
        return (
            f"multi-page TIFF ({facts.page_count} pages): the service takes single-page TIFF only; "
            "convert it to PDF",
            ErrorClass.UNSUPPORTED,
        )
    if facts.problem:
        return facts.problem, ErrorClass.UNREADABLE
    if trial and inbox.mode is not Mode.IMAGE:
        return (
            f"mode {inbox.mode} needs credentials; trial mode only has image",
            ErrorClass.REJECTED,
        )
    return None, ErrorClass.UNREADABLE
