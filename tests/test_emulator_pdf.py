"""Searchable PDFs and PDF inputs: the text layer goes onto the original pages, untouched.

The inputs are made here the way scanners and office programs make them: a 1-bit CCITT G4
page, a Flate image page whose MediaBox does not start at the origin, JPEG pages shown turned
by ``/Rotate`` or cut by a CropBox, a page of vector text, a page that inherits everything
through nested /Pages, a scan inside a Form XObject, and content whose ``q``/``Q`` do not
pair. Each carries its ground truth in
``/Subject``, so the fixture recognizer reports its lines in equal bands of the displayed page.
pdfium renders the input and output pages (the pixels must not change) and extracts the output's
text layer (the words must be where the recognizer saw them on the displayed page).
"""

from __future__ import annotations

import array
import ctypes
import io
import subprocess
import sys
import zlib
from collections.abc import Callable

import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from conftest import EmulatorApi
from PIL import Image, ImageChops, ImageFont, ImageOps, PngImagePlugin

from ocrwatch.emulator import Emulator, samples
from ocrwatch.emulator.document import DocumentError, load_document, rotate_document

ApiFactory = Callable[[Emulator], EmulatorApi]
TEXT = "Invoice number 4471\nTotal amount due\nPaid by transfer"
LIMIT = 100_000_000


@pytest.fixture
def api(emulator: Emulator, emulator_api: ApiFactory) -> EmulatorApi:
    return emulator_api(emulator)


def _with_subject(data: bytes, text: str, *, rotate: int = 0) -> bytes:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.docinfo["/Subject"] = text
        if rotate:
            for page in pdf.pages:
                page.Rotate = rotate
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def ccitt_pdf(text: str = TEXT) -> bytes:
    """A 1-bit page at 200 dpi, CCITT G4 compressed (Pillow writes mode 1 that way)."""
    page = samples.draw_page(text, width=1200, height=900).convert("1")
    buffer = io.BytesIO()
    page.save(buffer, "PDF", resolution=200.0)
    return _with_subject(buffer.getvalue(), text)


def grey_scan(pdf: pikepdf.Pdf, text: str = TEXT) -> pikepdf.Stream:
    """A 900 x 600 greyscale Flate image of ``text`` (432 x 288 pt at 150 dpi)."""
    image = samples.draw_page(text, width=900, height=600)
    stream = pikepdf.Stream(pdf, zlib.compress(image.tobytes()))
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height, stream.BitsPerComponent = 900, 600, 8
    stream.ColorSpace, stream.Filter = pikepdf.Name.DeviceGray, pikepdf.Name.FlateDecode
    return stream


def flate_pdf(text: str = TEXT) -> bytes:
    """A greyscale Flate image at 150 dpi on a page whose MediaBox starts at (100, 200)."""
    pdf = pikepdf.new()
    stream = grey_scan(pdf, text)
    width_pt, height_pt = 900 * 72 / 150, 600 * 72 / 150
    content = f"q {width_pt} 0 0 {height_pt} 100 200 cm /Scan Do Q".encode()
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[100, 200, 100 + width_pt, 200 + height_pt],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Scan=stream)),
        Contents=pikepdf.Stream(pdf, content),
    )
    pdf.pages.append(pikepdf.Page(page))
    pdf.docinfo["/Subject"] = text
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def jpeg_pdf(text: str = TEXT, *, rotate: int = 0) -> bytes:
    return _with_subject(samples.make_pdf([text], width=800, height=600), text, rotate=rotate)


def _saved(pdf: pikepdf.Pdf, text: str) -> bytes:
    pdf.docinfo["/Subject"] = text
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def inherited_pdf(text: str = TEXT) -> bytes:
    """A page that owns nothing but its content, two streams of it: its resources, MediaBox
    and ``/Rotate 90`` come from the two levels of /Pages above it, as a PDF merger leaves
    them."""
    pdf = pikepdf.new()
    resources = pdf.make_indirect(
        pikepdf.Dictionary(XObject=pikepdf.Dictionary(Scan=grey_scan(pdf)))
    )
    halves = [pikepdf.Stream(pdf, b"q 432 0 0 288 0 0 cm"), pikepdf.Stream(pdf, b" /Scan Do Q")]
    page = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Page, Contents=pikepdf.Array(halves))
    )
    middle = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Pages, Kids=[page], Count=1, Resources=resources)
    )
    root = pdf.Root.Pages
    root.Kids, root.Count, root.MediaBox, root.Rotate = [middle], 1, [0, 0, 432, 288], 90
    page.Parent, middle.Parent = middle, root
    return _saved(pdf, text)


def form_pdf(text: str = TEXT, *, content: bytes = b"/Fm0 Do") -> bytes:
    """The scan drawn inside a Form XObject, as many PDF producers draw every page; with
    ``content``, the page's own drawing around it."""
    pdf = pikepdf.new()
    form = pikepdf.Stream(pdf, b"q 432 0 0 288 0 0 cm /Scan Do Q")
    form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 432, 288]
    form.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Scan=grey_scan(pdf)))
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, 432, 288],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=form)),
        Contents=pikepdf.Stream(pdf, content),
    )
    pdf.pages.append(pikepdf.Page(page))
    return _saved(pdf, text)


def vector_pdf(text: str = TEXT) -> bytes:
    """A Letter page of Helvetica text, one line per band (no image at all)."""
    lines = text.split("\n")
    band_pt = 792 / len(lines)
    drawing = "".join(
        f"BT /F1 24 Tf 40 {792 - (i + 0.5) * band_pt:.1f} Td ({line}) Tj ET\n"
        for i, line in enumerate(lines)
    )
    pdf = pikepdf.new()
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
    )
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, 612, 792],
        Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
        Contents=pikepdf.Stream(pdf, drawing.encode()),
    )
    pdf.pages.append(pikepdf.Page(page))
    pdf.docinfo["/Subject"] = text
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _changed(data: bytes, *, rotate: int = 0, crop_box: list[float] | None = None) -> bytes:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        page = pdf.pages[0]
        if rotate:
            page.Rotate = rotate
        if crop_box:
            page.CropBox = crop_box
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


INPUTS: dict[str, Callable[[], bytes]] = {
    "ccitt-g4": ccitt_pdf,
    "flate-offset-mediabox": flate_pdf,
    "jpeg": jpeg_pdf,
    "jpeg-rotate-90": lambda: jpeg_pdf(rotate=90),
    "jpeg-rotate-180": lambda: jpeg_pdf(rotate=180),
    "flate-offset-rotate-270": lambda: _changed(flate_pdf(), rotate=270),
    # the text's middle line (its band of the cropped page) stays inside the crop
    "jpeg-cropbox": lambda: _changed(jpeg_pdf(), crop_box=[0, 100, 800, 500]),
    "vector-text": vector_pdf,
    "inherited-nested-kids-contents-array-rotate-90": inherited_pdf,
    "form-xobject": form_pdf,
    # content that scales the page, then opens a q it never closes
    "unbalanced-q": lambda: form_pdf(content=b"0.5 0 0 0.5 0 0 cm q 2 0 0 2 0 0 cm /Fm0 Do"),
    # content that starts by closing a q it never opened, then moves the page down
    "stray-q": lambda: form_pdf(content=b"Q 1 0 0 1 0 -100 cm /Fm0 Do"),
}


def render_pages(pdf: bytes) -> list[Image.Image]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [
            document[i].render(scale=1.0, fill_color=(255, 255, 255, 255)).to_pil().convert("L")
            for i in range(len(document))
        ]
    finally:
        document.close()


def ink_fraction(image: Image.Image) -> float:
    histogram = image.convert("L").histogram()
    return sum(histogram[:128]) / (image.width * image.height)


def text_centres(pdf: bytes, page_index: int = 0) -> tuple[str, list[tuple[float, float]]]:
    """The page's extracted text (line breaks as spaces) and each character's centre, as
    fractions of the displayed page (x right, y down)."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[page_index]
        width, height = (round(v) for v in page.get_size())
        text_page = page.get_textpage()
        text, centres = "", []
        for index in range(text_page.count_chars()):
            char = text_page.get_text_range(index, 1)
            left, bottom, right, top = text_page.get_charbox(index, loose=True)
            x, y = _to_device(page, width, height, (left + right) / 2, (bottom + top) / 2)
            text += " " if char in "\r\n" else char
            centres.append((x / width, y / height))
        return text, centres
    finally:
        document.close()


def line_centres(pdf: bytes, line: str, page_index: int = 0) -> list[tuple[float, float]]:
    """Where each occurrence of ``line`` lies on the displayed page (the mean of its chars)."""
    text, centres = text_centres(pdf, page_index)
    found, start = [], text.find(line)
    while start >= 0:
        span = centres[start : start + len(line)]
        found.append((sum(p[0] for p in span) / len(span), sum(p[1] for p in span) / len(span)))
        start = text.find(line, start + len(line))
    return found


def assert_lines_in_bands(pdf: bytes, text: str, *, page_index: int = 0, copies: int = 1) -> None:
    """Each line of ``text`` is in the layer once (or ``copies`` times, ours last), centred in
    its band of the displayed page, as the fixture recognizer reports it."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        found = line_centres(pdf, line, page_index)
        assert len(found) == copies, (line, found)
        x, y = found[-1]
        assert index / len(lines) < y < (index + 1) / len(lines), (line, y)
        assert 0.2 < x < 0.8, (line, x)  # the fixture's lines span the page's width


def _to_device(
    page: pdfium.PdfPage, width: int, height: int, x: float, y: float
) -> tuple[int, int]:
    # pdfium's own page-to-screen mapping (it applies /Rotate and the page box), so the test
    # does not repeat the writer's arithmetic.
    device_x, device_y = ctypes.c_int(), ctypes.c_int()
    pdfium_c.FPDF_PageToDevice(
        page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(device_x), ctypes.byref(device_y)
    )
    return device_x.value, device_y.value


def assert_fonts_embedded(pdf: bytes) -> None:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        for page in document.pages:
            fonts = page.Resources.get("/Font", {})
            ours = [f for f in fonts.values() if f.get("/Subtype") == "/Type0"]
            assert ours, "no Type0 font on the page"
            for font in ours:
                descriptor = font.DescendantFonts[0].FontDescriptor
                assert "/FontFile2" in descriptor or "/FontFile3" in descriptor
                program = bytes(
                    descriptor.get("/FontFile2", descriptor.get("/FontFile3")).read_bytes()
                )
                ImageFont.truetype(io.BytesIO(program), 12)  # FreeType loads it


@pytest.mark.parametrize("name", list(INPUTS))
def test_pdf_input_keeps_its_pages_and_gains_the_text_where_it_was_seen(
    api: EmulatorApi, name: str
) -> None:
    original = INPUTS[name]()
    results = dict(api.recognize("RecognizePdf", original, {"resultType": "TextAndPdf"}))
    assert results["Text"] == TEXT.encode()
    output = results["Pdf"]

    # The page looks exactly as it did: nothing re-encoded, rotation kept, no visible text.
    [before], [after] = render_pages(original), render_pages(output)
    assert after.size == before.size
    assert ImageChops.difference(before, after).getbbox() is None
    assert ink_fraction(after) > 0.005  # and the page is not blank

    # The invisible text lies on the displayed page where the recognizer saw each line (the
    # vector page's own text is found too, first).
    assert_lines_in_bands(output, TEXT, copies=2 if name == "vector-text" else 1)

    assert len(output) < len(original) + 6_000  # the same images, plus a font and the text
    assert_fonts_embedded(output)


def test_every_page_of_a_multi_page_pdf_gets_its_own_text(api: EmulatorApi) -> None:
    pages = ["first page\nline two", "second page", "third"]
    original = samples.make_pdf(pages, width=400, height=300)
    [(_, output)] = api.recognize("RecognizePdf", original, {"resultType": "Pdf"})
    assert [render_pages(output)[i].size for i in range(3)] == [(400, 300)] * 3
    for index, text in enumerate(pages):
        assert_lines_in_bands(output, text, page_index=index)


def test_the_rotate_setting_turns_the_output_page_with_its_text(api: EmulatorApi) -> None:
    original = jpeg_pdf()
    results = dict(api.recognize("RecognizePdf", original, {"resultType": "Pdf", "Rotate": 90}))
    [before], [after] = render_pages(original), render_pages(results["Pdf"])
    assert (
        ImageChops.difference(before.transpose(Image.Transpose.ROTATE_270), after).getbbox() is None
    )
    assert_lines_in_bands(results["Pdf"], TEXT)


def test_a_jpeg_image_is_embedded_as_it_came(api: EmulatorApi) -> None:
    jpeg = samples.make_jpeg(TEXT)
    [(_, output)] = api.recognize("RecognizeImage", jpeg, {"resultType": "Pdf"})
    with pikepdf.open(io.BytesIO(output)) as pdf:
        [image] = pdf.pages[0].get_images().values()
        assert image.Filter == pikepdf.Name.DCTDecode
        assert image.read_raw_bytes() == jpeg
    assert len(output) < len(jpeg) + 6_000
    assert_lines_in_bands(output, TEXT)
    assert_fonts_embedded(output)


@pytest.mark.parametrize("mode", ["L", "1", "RGB", "P", "RGBA", "I;16"])
def test_other_images_are_embedded_losslessly(api: EmulatorApi, mode: str) -> None:
    page = samples.draw_page(TEXT)
    if mode == "I;16":  # 16 bits per pixel: white is 65535
        page = page.convert("I").point(lambda value: value * 257).convert("I;16")
    else:
        page = page.convert(mode)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(samples.TEXT_KEY, TEXT)
    buffer = io.BytesIO()
    page.save(buffer, "PNG", pnginfo=info)
    png = buffer.getvalue()
    [(_, output)] = api.recognize("RecognizeImage", png, {"resultType": "Pdf"})
    [rendered] = render_pages(output)
    expected = samples.draw_page(TEXT) if mode == "I;16" else page.convert("L")
    assert ImageChops.difference(rendered, expected).getextrema()[1] <= 1  # 16 bits round
    assert len(output) < len(png) * 1.5 + 6_000
    assert_lines_in_bands(output, TEXT)


@pytest.mark.parametrize("name", ["ccitt-g4", "flate-offset-mediabox", "vector-text"])
def test_pages_other_than_one_jpeg_load_with_their_real_pixels(name: str) -> None:
    document = load_document(INPUTS[name](), max_pixels=LIMIT)
    [page] = document.pages
    assert document.embedded_text == TEXT
    image = page.pixels()
    assert image is not None
    assert image.size == (page.width_px, page.height_px)
    assert ink_fraction(image) > 0.005


def test_a_rotated_pdf_page_loads_as_it_is_shown() -> None:
    document = load_document(jpeg_pdf(rotate=90), max_pixels=LIMIT)
    [page] = document.pages
    assert (page.width_px, page.height_px) == (600, 800)
    image = page.pixels()
    assert image is not None
    assert image.size == (600, 800)
    turned = rotate_document(document, 90).pages[0]
    assert (turned.width_px, turned.height_px) == (800, 600)
    assert turned.pixels() is not None
    assert turned.pixels().size == (800, 600)  # type: ignore[union-attr]


def test_a_pdf_page_is_rendered_within_the_pixel_limit() -> None:
    document = load_document(ccitt_pdf(), max_pixels=200_000)
    [page] = document.pages
    assert page.width_px * page.height_px <= 200_000
    image = page.pixels()
    assert image is not None
    assert image.width * image.height <= 200_000


def test_an_encrypted_pdf_is_refused() -> None:
    with pikepdf.open(io.BytesIO(jpeg_pdf())) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(owner="owner", user="user"))
    with pytest.raises(DocumentError, match="encrypted"):
        load_document(out.getvalue(), max_pixels=LIMIT)


def test_text_beyond_latin_is_searchable_and_beyond_the_bmp_is_a_replacement(
    api: EmulatorApi,
) -> None:
    text = "Grüße ✓ Ελλάδα\n日本語 😀"
    [(_, output)] = api.recognize("RecognizeImage", samples.make_png(text), {"resultType": "Pdf"})
    extracted, _ = text_centres(output)
    assert "Grüße ✓ Ελλάδα" in extracted
    assert "日本語 \ufffd" in extracted


def test_a_logo_does_not_set_a_vector_pages_grid() -> None:
    with pikepdf.open(io.BytesIO(vector_pdf())) as pdf:
        logo = pikepdf.Stream(pdf, zlib.compress(bytes(120 * 40)))
        logo.Type, logo.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
        logo.Width, logo.Height, logo.BitsPerComponent = 120, 40, 8
        logo.ColorSpace, logo.Filter = pikepdf.Name.DeviceGray, pikepdf.Name.FlateDecode
        page = pdf.pages[0]
        page.Resources.XObject = pikepdf.Dictionary(Logo=logo)
        page.contents_add(b"q 60 0 0 20 500 740 cm /Logo Do Q")
        out = io.BytesIO()
        pdf.save(out)
    [page] = load_document(out.getvalue(), max_pixels=LIMIT).pages
    assert (page.width_px, page.height_px) == (1275, 1650)  # Letter at 150 dpi


def test_image_png_of_a_ccitt_pdf_shows_the_page(api: EmulatorApi) -> None:
    [(_, png)] = api.recognize("RecognizePdf", ccitt_pdf(), {"resultType": "ImagePNG"})
    image = Image.open(io.BytesIO(png))
    assert image.size == (1200, 900)  # the scan's own pixels
    assert ink_fraction(image) > 0.005  # was a white page


def test_the_pdf_libraries_load_only_when_a_pdf_comes() -> None:
    # About 20 MiB of memory: an embedded service that is never sent a PDF does without.
    probe = (
        "import io, sys\n"
        "from PIL import Image\n"
        "import ocrwatch.embedded, ocrwatch.emulator.server\n"
        "from ocrwatch.emulator.document import load_document\n"
        "buffer = io.BytesIO()\n"
        "Image.new('L', (40, 20), 255).save(buffer, 'PNG')\n"
        "load_document(buffer.getvalue(), max_pixels=10**6)\n"
        "print(sorted({'pikepdf', 'pypdfium2'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_pdf_pdfium_cannot_open_ends_an_image_task_with_its_reason(api: EmulatorApi) -> None:
    # Cut in half: qpdf rebuilds what it can and reads the page, pdfium refuses the file.
    original = jpeg_pdf()
    damaged = original[: len(original) // 2] + b"%%EOF\n"
    body = api.wait("RecognizePdf", api.submit("RecognizePdf", damaged, {"resultType": "ImagePNG"}))
    assert body["taskStatus"] == "Error", body
    [message] = body["error"]["messages"]
    assert message.startswith("The PDF document cannot be read: page 1 cannot be rendered"), message


def test_a_needle_thin_page_stays_within_the_pixel_limit() -> None:
    # A page 0.03 pt high rounds up to one pixel row: the width alone must keep to the limit
    # (it was 1.8e9 pixels wide, and rendering it wanted gigabytes).
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(100, 100))
    pdf.pages[0].MediaBox = [0, 0, 1_000_000_000, 0.03]
    out = io.BytesIO()
    pdf.save(out)
    [page] = load_document(out.getvalue(), max_pixels=1_000_000).pages
    assert page.width_px * page.height_px <= 1_000_000


def test_sixteen_bit_greys_in_motorola_byte_order_are_embedded_as_they_look(
    api: EmulatorApi,
) -> None:
    # A big-endian 16-bit TIFF (Pillow's mode I;16B): the page must not come out white where
    # the scan is grey, as a 16-bit little-endian one does not.
    page = samples.draw_page(TEXT)
    words = array.array(
        "H", page.convert("I").point(lambda value: value * 257).convert("I;16").tobytes()
    )
    if sys.byteorder == "little":
        words.byteswap()
    buffer = io.BytesIO()
    Image.frombytes("I;16B", page.size, words.tobytes()).save(buffer, "TIFF", tiffinfo={270: TEXT})
    tiff = buffer.getvalue()
    assert Image.open(io.BytesIO(tiff)).mode == "I;16B"
    [(_, output)] = api.recognize("RecognizeImage", tiff, {"resultType": "Pdf"})
    [rendered] = render_pages(output)
    assert ImageChops.difference(rendered, page).getextrema()[1] <= 1
    assert_lines_in_bands(output, TEXT)


def test_a_pdf_with_16_bit_images_declares_a_version_that_has_them(api: EmulatorApi) -> None:
    # 16 bits per component came with PDF 1.5; a reader may refuse them in an older file.
    page = samples.draw_page(TEXT).convert("I").point(lambda value: value * 257)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(samples.TEXT_KEY, TEXT)
    buffer = io.BytesIO()
    page.convert("I;16").save(buffer, "PNG", pnginfo=info)
    [(_, output)] = api.recognize("RecognizeImage", buffer.getvalue(), {"resultType": "Pdf"})
    with pikepdf.open(io.BytesIO(output)) as pdf:
        [image] = pdf.pages[0].get_images().values()
        assert image.BitsPerComponent == 16
        assert tuple(int(part) for part in pdf.pdf_version.split(".")) >= (1, 5)


def test_a_pdf_1_1_input_is_raised_to_the_version_of_its_text_layers_font(
    api: EmulatorApi,
) -> None:
    with pikepdf.open(io.BytesIO(jpeg_pdf())) as pdf:
        out = io.BytesIO()
        pdf.save(out, force_version="1.1")
    [(_, output)] = api.recognize("RecognizePdf", out.getvalue(), {"resultType": "Pdf"})
    assert output.startswith(b"%PDF-1.2")  # Type0 fonts came with PDF 1.2


def test_a_page_with_a_user_unit_gets_its_scans_pixels() -> None:
    # /UserUnit 10: the 43.2 x 28.8 unit page is 60 x 40 inches, its 900 x 600 scan 15 dpi.
    # The grid's limits are physical; in units the scan would count as 1500 dpi and be cut
    # to 600.
    with pikepdf.open(io.BytesIO(flate_pdf())) as pdf:
        page = pdf.pages[0]
        page.MediaBox = [0, 0, 43.2, 28.8]
        page.UserUnit = 10
        page.Contents = pikepdf.Stream(pdf, b"q 43.2 0 0 28.8 0 0 cm /Scan Do Q")
        out = io.BytesIO()
        pdf.save(out)
    [page] = load_document(out.getvalue(), max_pixels=LIMIT).pages
    assert (page.width_px, page.height_px) == (900, 600)
    image = page.pixels()
    assert image is not None
    assert ink_fraction(image) > 0.005


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_jpeg_turned_by_exif_is_shown_upright_as_the_bytes_that_came(
    api: EmulatorApi, orientation: int
) -> None:
    # A phone or scanner stores the pixels as the sensor saw them and says in EXIF how to
    # turn them: viewers show the page upright, and so does the local engine, which reads it
    # upright. The PDF page must show it upright too, with the lines on it, from the same bytes.
    upright = samples.draw_page(TEXT, width=600, height=800).convert("RGB")
    stored_as = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90}
    stored = upright.transpose(stored_as.get(orientation, Image.Transpose.ROTATE_270))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=90, exif=exif, comment=TEXT.encode())
    jpeg = buffer.getvalue()
    [(_, output)] = api.recognize("RecognizeImage", jpeg, {"resultType": "Pdf"})
    with pikepdf.open(io.BytesIO(output)) as pdf:
        [image] = pdf.pages[0].get_images().values()
        assert image.read_raw_bytes() == jpeg
    [rendered] = render_pages(output)
    decoded = ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert("L")
    assert rendered.size == decoded.size == (600, 800)
    assert ImageChops.difference(rendered, decoded).getextrema()[1] <= 2
    assert_lines_in_bands(output, TEXT)


def test_a_jpeg_with_a_damaged_exif_block_is_still_turned_upright(api: EmulatorApi) -> None:
    # The Make tag renumbered to SamplesPerPixel with its text still in it: Pillow can read
    # the orientation but not write the block back (exif_transpose raised struct.error).
    upright = samples.draw_page(TEXT, width=600, height=800).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(
        buffer, "JPEG", quality=90, exif=exif, comment=TEXT.encode()
    )
    # Pillow writes EXIF big-endian: tag 0x010F, type 2 (ASCII) becomes tag 0x0115.
    jpeg = buffer.getvalue().replace(b"\x01\x0f\x00\x02", b"\x01\x15\x00\x02", 1)
    assert jpeg != buffer.getvalue()
    [(_, output)] = api.recognize("RecognizeImage", jpeg, {"resultType": "Pdf"})
    [rendered] = render_pages(output)
    assert rendered.size == (600, 800)
    assert_lines_in_bands(output, TEXT)


@pytest.mark.parametrize("orientation", [5, 8])  # transposed, turned: rows become columns
def test_a_page_stood_up_by_exif_takes_its_width_from_the_stored_columns(
    orientation: int,
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("L", (400, 300), 255).save(buffer, "JPEG", exif=exif, dpi=(100, 200))
    [page] = load_document(buffer.getvalue(), max_pixels=LIMIT).pages
    assert (page.width_px, page.height_px) == (300, 400)
    assert page.width_px * page.points_per_px == pytest.approx(300 * 72 / 200)  # 1.5 inches
