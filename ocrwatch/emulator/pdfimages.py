"""Embed a page image in a PDF without loss: a JPEG as it came, anything else as Flate.

A JPEG whose page is the submitted file's pixels, at most turned (by its EXIF orientation or
the task's ``Rotate``), goes in as its own bytes with DCTDecode, to be drawn turned, so the
PDF shows exactly the pixels that were recognised and is no bigger than the JPEG. Every other
image is compressed losslessly: Pillow's PNG encoder filters and deflates the rows, and its
IDAT stream is a valid FlateDecode stream with PNG predictors (``/Predictor 15``), so a
PNG-sized image becomes a PNG-sized PDF image. 1-bit images stay at 1 bit per pixel, 16-bit
greys (either byte order) at 16 bits; transparency is laid on white as it would be printed;
palettes become grey or RGB; CMYK is deflated as it is.
"""

from __future__ import annotations

import io
import struct
import zlib

import pikepdf
from PIL import Image

from ocrwatch.emulator.document import Document, Page

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Mode Pillow writes as PNG -> (PDF colour space, colours per pixel).
_PNG_MODES = {
    "1": ("/DeviceGray", 1),
    "L": ("/DeviceGray", 1),
    "I;16": ("/DeviceGray", 1),
    "RGB": ("/DeviceRGB", 3),
}


def flate_stream(pdf: pikepdf.Pdf, payload: bytes, **entries: object) -> pikepdf.Stream:
    """A stream of ``payload`` deflated, with the given dictionary entries."""
    stream = pikepdf.Stream(pdf, zlib.compress(payload, 9))
    stream.Filter = pikepdf.Name.FlateDecode
    for key, value in entries.items():
        stream[f"/{key}"] = value
    return stream


def _png_rows(image: Image.Image) -> tuple[bytes, int]:
    """Pillow's PNG encoding of ``image``: the zlib stream of its filtered rows, and bit depth."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    data, position, idat, depth = buffer.getvalue(), len(_PNG_SIGNATURE), b"", 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        payload = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            depth = payload[8]
        elif kind == b"IDAT":
            idat += payload
        position += 12 + length
    return idat, depth


def _is_grey(image: Image.Image) -> bool:
    if image.mode in ("L", "LA", "I", "F"):
        return True
    if image.mode not in ("P", "PA") or image.palette is None:
        return False
    palette = image.palette.tobytes()
    if image.palette.mode not in ("RGB", "RGBA"):
        return False
    step = len(image.palette.mode)
    return all(
        palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, step)
    )


def _flat(image: Image.Image) -> Image.Image:
    """The image in a mode PDF shows directly: transparency laid on white, as printed; a
    palette of greys as grey (a scanner's GIF is as small in the PDF as it came)."""
    if image.mode in ("1", "L", "RGB", "I;16", "CMYK"):
        return image
    if image.mode in ("I;16B", "I;16L", "I;16N"):
        # Pillow's direct conversions of 16-bit greys clip at 255; through 32-bit integers
        # they keep all 16 bits, in the byte order PNG (and so the PDF) wants.
        return image.convert("I").convert("I;16")
    target = "L" if _is_grey(image) else "RGB"
    if image.mode in ("LA", "RGBA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert(target)
    return image.convert(target)


def image_stream(pdf: pikepdf.Pdf, document: Document, page: Page) -> tuple[pikepdf.Stream, int]:
    """The page's image as an image XObject, and how far to turn it clockwise to show it."""
    image = page.image
    if image is None:
        raise ValueError("a page without an image")
    is_jpeg_as_sent = document.format == "JPEG" and page.source_turn is not None
    turn = page.source_turn if is_jpeg_as_sent and page.source_turn is not None else 0
    width, height = (image.height, image.width) if turn % 180 else (image.width, image.height)
    entries: dict[str, object] = {"Type": pikepdf.Name.XObject, "Subtype": pikepdf.Name.Image}
    entries |= {"Width": width, "Height": height, "BitsPerComponent": 8}
    if is_jpeg_as_sent:  # the file's pixels, at most turned: the bytes that came, turned
        stream = pikepdf.Stream(pdf, document.data)
        stream.Filter = pikepdf.Name.DCTDecode
        spaces = {"L": "/DeviceGray", "CMYK": "/DeviceCMYK"}
        entries["ColorSpace"] = pikepdf.Name(spaces.get(image.mode, "/DeviceRGB"))
        if image.mode == "CMYK" and "adobe" in image.info:  # Adobe writes CMYK inverted
            entries["Decode"] = [1, 0] * 4
    else:
        flat = _flat(image)
        if flat.mode == "CMYK":
            stream = flate_stream(pdf, flat.tobytes())
            entries["ColorSpace"] = pikepdf.Name.DeviceCMYK
        else:
            rows, depth = _png_rows(flat)
            stream = pikepdf.Stream(pdf, rows)
            stream.Filter = pikepdf.Name.FlateDecode
            space, colours = _PNG_MODES[flat.mode]
            entries |= {"ColorSpace": pikepdf.Name(space), "BitsPerComponent": depth}
            stream.DecodeParms = pikepdf.Dictionary(
                Predictor=15, Colors=colours, BitsPerComponent=depth, Columns=flat.width
            )
    for key, value in entries.items():
        stream[f"/{key}"] = value
    return stream, turn
