"""Refuse before paying for the API what the service would refuse anyway, and pick the resource.

A pure decision on the facts ``probe.inspect`` read from a settled file, the inbox's profile and
the target (Aspose Cloud or the local engine): the format table in ``ocrwatch.formats`` says
what each target takes, as it is or converted, and how many pixels a page may have. Refused:
an unknown or unsupported format (named), an encrypted PDF, a PDF or a multi-page file outside
an image inbox, one that would go to RecognizePdf in trial mode, a page over the target's
pixel limit, a mode trial mode cannot use. ``ocrwatch explain`` shows the same verdict the
daemon reaches.
"""

from __future__ import annotations

from ocrwatch import formats, probe
from ocrwatch.config import InboxConfig
from ocrwatch.model import ErrorClass, Mode


def preflight_problem(
    facts: probe.FileFacts,
    inbox: InboxConfig,
    *,
    trial: bool,
    target: formats.Target = formats.Target.CLOUD,
) -> tuple[str | None, ErrorClass]:
    """Why the file would be refused (None if it would not), and the error class to file it as."""
    kind = facts.kind
    pages = facts.page_count or 1
    refusal = formats.refusal(kind, pages=pages, target=target)
    if refusal is not None:
        error_class = (
            ErrorClass.UNREADABLE if kind is formats.Format.UNKNOWN else (ErrorClass.UNSUPPORTED)
        )
        return refusal, error_class
    if kind is formats.Format.PDF and facts.is_encrypted:
        return (
            "encrypted PDF: it needs a password to open; remove the password first "
            "(qpdf --password=PASSWORD --decrypt in.pdf out.pdf)",
            ErrorClass.UNREADABLE,
        )
    if facts.is_too_large:
        return facts.problem, ErrorClass.UNSUPPORTED
    if target is formats.Target.ENGINE and facts.heaviest_page is not None:
        # The engine's limit is on decoded bytes: the page nearest it, in its mode.
        width, height, page, mode = facts.heaviest_page
        too_large = formats.page_pixels_problem(width, height, page=page, target=target, mode=mode)
        if too_large is not None:
            return too_large, ErrorClass.UNSUPPORTED
    elif facts.largest_page is not None:
        width, height, page = facts.largest_page
        too_large = formats.page_pixels_problem(width, height, page=page, target=target)
        if too_large is not None:
            return too_large, ErrorClass.UNSUPPORTED
    spec = formats.spec(kind)
    is_paged = kind is formats.Format.PDF or (pages > 1 and spec is not None and spec.all_pages)
    if is_paged and inbox.mode is not Mode.IMAGE:
        what = "PDFs" if kind is formats.Format.PDF else f"{kind} files of several pages"
        return f"{what} can only be recognised in image inboxes (this one is {inbox.mode})", (
            ErrorClass.UNSUPPORTED
        )
    if trial and upload_mode(facts, inbox, target=target) is Mode.PDF:
        what = (
            "PDFs need"
            if kind is formats.Format.PDF
            else (f"a {kind} of {pages} pages is sent as a PDF, which needs")
        )
        return f"{what} credentials: RecognizePdf has no trial mode", ErrorClass.UNSUPPORTED
    if facts.problem:
        return facts.problem, ErrorClass.UNREADABLE
    if trial and inbox.mode is not Mode.IMAGE:
        return (
            f"mode {inbox.mode} needs credentials; trial mode only has image",
            ErrorClass.REJECTED,
        )
    return None, ErrorClass.UNREADABLE


def upload_mode(facts: probe.FileFacts, inbox: InboxConfig, *, target: formats.Target) -> Mode:
    """The API resource for an admitted file: RecognizePdf for what reaches it as a PDF."""
    pages = facts.page_count or 1
    sent = formats.delivery(facts.kind, pages=pages, target=target)
    if facts.kind is formats.Format.PDF or sent is formats.Delivery.TO_PDF:
        return Mode.PDF
    return inbox.mode
