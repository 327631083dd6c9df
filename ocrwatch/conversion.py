"""Convert a file, on its way to the upload, into a form the target takes, without loss.

What is converted is decided by ``ocrwatch.formats``: for Aspose Cloud, a file of several TIFF
pages becomes one PDF (sent to RecognizePdf), and WebP, AVIF, JPEG 2000, PNM and single-page
BigTIFF become PNG. The local engine reads all of them as they are, so nothing is converted for
it. For both targets a PDF with only an owner password (it opens without one) is sent
decrypted, its streams unchanged; a PDF that needs a password to open never gets this far.
The file in the inbox is never changed; the converted bytes exist only in memory for the
upload (a retry converts again, which gives the same bytes).

Lossless means the pixels the recogniser sees are the pixels of the file: img2pdf puts a TIFF's
CCITT G3/G4 and JPEG strips into the PDF as they are (no decoding), and other TIFF pages are
stored Flate-compressed at their bit depth. PNG keeps 1-bit, 8/16-bit grey, palette, RGB and
alpha as they are; img2pdf keeps a TIFF page's alpha as the image's soft mask. Two exceptions,
both named in docs/formats.md: a CMYK or YCbCr image becomes RGB in PNG (PNG has no CMYK), and
a TIFF page img2pdf refuses to embed goes into the PDF through PNG, its alpha laid on white,
as it would be printed.

Runs on an upload worker thread; raises ``InputFileError`` when the file cannot be decoded.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import BinaryIO

from PIL import Image

from ocrwatch import formats
from ocrwatch.errors import InputFileError
from ocrwatch.model import Mode

_PNG_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "P", "RGB", "RGBA"})
_CLOUD = formats.Target.CLOUD  # only what goes to the cloud is converted
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def conversion_for(fmt: formats.Format, *, mode: Mode, target: formats.Target) -> formats.Delivery:
    """How a file of ``fmt`` admitted for ``mode`` is sent (``mode`` PDF: to RecognizePdf)."""
    if target is formats.Target.ENGINE:
        return formats.delivery(fmt, pages=1, target=target)
    if mode is Mode.PDF and fmt is not formats.Format.PDF:
        return formats.Delivery.TO_PDF  # preflight chose RecognizePdf for its pages
    return formats.delivery(fmt, pages=1, target=target)


def for_upload(source: BinaryIO, *, mode: Mode, target: formats.Target) -> BinaryIO:
    """``source`` itself when it goes as it is, else its converted bytes; read from the start."""
    source.seek(0)
    fmt = formats.sniff(source.read(formats.SNIFF_BYTES))
    source.seek(0)
    sent = conversion_for(fmt, mode=mode, target=target)
    if sent is formats.Delivery.AS_IS and fmt is formats.Format.PDF:
        return _without_owner_password(source)
    if sent is formats.Delivery.AS_IS:
        return source
    if sent is formats.Delivery.REFUSED:
        reason = formats.refusal(fmt, pages=1, target=target)
        raise InputFileError(reason or f"{fmt} cannot be sent")
    data = source.read()
    converted = to_pdf(data, fmt=fmt) if sent is formats.Delivery.TO_PDF else to_png(data, fmt=fmt)
    return io.BytesIO(converted)


def _without_owner_password(source: BinaryIO) -> BinaryIO:
    """A PDF with only an owner password, decrypted; any other PDF is ``source`` as it is.

    Such a PDF opens without a password (preflight refused those that need one), but the
    service's documentation says nothing about encrypted PDFs and the emulator, like services
    that read the file's streams, refuses them: so what is sent is the same document without
    its encryption, every stream's content unchanged (qpdf decrypts, nothing is re-encoded).
    """
    import pikepdf  # noqa: PLC0415  (loaded on first use, as in to_pdf)

    try:
        with pikepdf.open(source) as pdf:
            if not pdf.is_encrypted:
                source.seek(0)
                return source
            decrypted = io.BytesIO()
            pdf.save(decrypted)  # no ``encryption`` argument: saved without any
    except pikepdf.PasswordError as exc:
        raise InputFileError("encrypted PDF: it needs a password to open") from exc
    except (pikepdf.PdfError, ValueError):
        source.seek(0)  # the service judges a PDF qpdf cannot parse, as it always did
        return source
    decrypted.seek(0)
    return decrypted


def _open(data: bytes, fmt: formats.Format) -> Image.Image:
    entry = formats.spec(fmt)
    if entry is None or entry.pillow is None:
        raise InputFileError(f"{fmt} cannot be decoded here")
    try:
        image = Image.open(io.BytesIO(data), formats=[entry.pillow])
    except (Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
        raise InputFileError(f"unreadable {fmt}: {exc}") from exc
    problem = formats.page_pixels_problem(*image.size, target=_CLOUD)
    if problem is not None:
        raise InputFileError(problem)
    return image


def _png_ready(image: Image.Image) -> Image.Image:
    """The frame in a mode PNG stores as it is; the orientation its EXIF asks for applied."""
    # Loaded on first use, as img2pdf (with pikepdf) in to_pdf: a daemon that never
    # converts need not hold their names for its lifetime.
    from PIL import ImageOps  # noqa: PLC0415

    upright = ImageOps.exif_transpose(image)  # a lossless transpose, at most
    if upright.mode in _PNG_MODES:
        return upright
    if upright.mode == "I":  # 32-bit grey, as Pillow reads 16-bit TIFFs and PGMs: 16 bits
        return upright.convert("I;16")
    return upright.convert("RGBA" if "A" in upright.getbands() else "RGB")


def _png_bytes(image: Image.Image, *, dpi: object) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"compress_level": 6}
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(dpi):
        options["dpi"] = dpi
    image.save(out, "PNG", **options)
    return out.getvalue()


def to_png(data: bytes, *, fmt: formats.Format) -> bytes:
    """The first frame as PNG, pixels unchanged (CMYK becomes RGB)."""
    try:
        with _open(data, fmt) as image:
            image.load()
            return _png_bytes(_png_ready(image), dpi=image.info.get("dpi"))
    except _DECODE_ERRORS as exc:
        raise InputFileError(f"unreadable {fmt}: {exc}") from exc


def to_pdf(data: bytes, *, fmt: formats.Format) -> bytes:
    """Every page as one page of a PDF, in order, at the size its resolution gives."""
    import img2pdf  # noqa: PLC0415

    # It logs each alpha channel it keeps as a soft mask: a fact, not a warning for the user.
    logging.getLogger("img2pdf").setLevel(logging.ERROR)

    refusals = (
        img2pdf.AlphaChannelError, img2pdf.ImageOpenError, img2pdf.UnsupportedColorspaceError,
        img2pdf.ExifOrientationError, img2pdf.NegativeDimensionError, img2pdf.JpegColorspaceError,
    )  # fmt: skip
    try:
        pdf: bytes = img2pdf.convert(data, rotation=img2pdf.Rotation.ifvalid)
    except (*refusals, *_DECODE_ERRORS, NotImplementedError):
        # img2pdf takes a page only as it can embed it (usual modes and depths): redo the
        # pages through PNG, which it embeds as they are.
        pdf = img2pdf.convert(_pages_as_png(data, fmt), rotation=img2pdf.Rotation.ifvalid)
    return pdf


def _pages_as_png(data: bytes, fmt: formats.Format) -> list[bytes]:
    """Each page as PNG (alpha laid on white), for the pages img2pdf takes no other way."""
    pages: list[bytes] = []
    try:
        with _open(data, fmt) as image:
            for index in range(int(getattr(image, "n_frames", 1))):
                image.seek(index)
                problem = formats.page_pixels_problem(*image.size, page=index + 1, target=_CLOUD)
                if problem is not None:
                    raise InputFileError(problem)
                frame = _png_ready(image)
                if "A" in frame.getbands() or frame.mode == "P":
                    paper = Image.new("RGBA", frame.size, (255, 255, 255, 255))
                    frame = Image.alpha_composite(paper, frame.convert("RGBA")).convert("RGB")
                pages.append(_png_bytes(frame, dpi=image.info.get("dpi")))
    except _DECODE_ERRORS as exc:
        raise InputFileError(f"unreadable {fmt}: {exc}") from exc
    return pages
