"""Every layer agrees with the one format table (``ocrwatch.formats``).

Sample files of every format run through each layer that judges files: the daemon's sniffing
and preflight (for Aspose Cloud and for the local engine), the default include patterns, the
lossless conversion before upload, the emulator's document loader standing in for the cloud
and in front of the engine, and the engine's page reader. A layer that takes what the table
refuses, refuses what it takes, or counts other pages fails here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path, PurePath

import pytest
from daemon_harness import write_config
from daemon_process import ocrwatch_cli
from odd_inputs import encoded, g4_tiff, page, sixteen_bit_png
from PIL import Image

from ocrwatch import conversion, formats, policy, probe
from ocrwatch.config import DEFAULT_INCLUDE, InboxConfig, load_config
from ocrwatch.emulator.document import DocumentError, load_document
from ocrwatch.emulator.samples import make_pdf
from ocrwatch.model import ErrorClass, Mode
from ocrwatch.preflight import preflight_problem, upload_mode

pytest.importorskip("cv2")
from ocrwatch.engine.failures import EngineInputError
from ocrwatch.engine.sources import read_pages

Format = formats.Format
CLOUD, ENGINE = formats.Target.CLOUD, formats.Target.ENGINE


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    format: Format
    pages: int  # pages the engine reads (the first frame only for an animation)


def _small(text: str = "format sample") -> Image.Image:
    return page(text, size=(320, 120), font_px=24, origin=(10, 30))


def _big_tiff(pages: int) -> bytes:
    images = [_small(f"page {n}") for n in range(pages)]
    return encoded(images[0], "TIFF", big_tiff=True, save_all=True, append_images=images[1:])


def _webp_animation() -> bytes:
    frames = [_small("frame one").convert("RGB"), _small("frame two").convert("RGB")]
    return encoded(frames[0], "WEBP", lossless=True, save_all=True, append_images=frames[1:])


SAMPLES = [
    Sample("a.png", encoded(_small(), "PNG"), Format.PNG, 1),
    Sample("b.jpg", encoded(_small().convert("CMYK"), "JPEG"), Format.JPEG, 1),
    Sample("c.gif", encoded(_small(), "GIF"), Format.GIF, 1),
    Sample("d.bmp", encoded(_small(), "BMP"), Format.BMP, 1),
    Sample("e.tif", g4_tiff([_small()]), Format.TIFF, 1),
    Sample("f.tif", g4_tiff([_small("one"), _small("two"), _small("three")]), Format.TIFF, 3),
    Sample("g.tiff", encoded(_small(), "TIFF", big_tiff=True), Format.BIGTIFF, 1),
    Sample("h.tiff", _big_tiff(2), Format.BIGTIFF, 2),
    Sample("i.webp", encoded(_small(), "WEBP", lossless=True), Format.WEBP, 1),
    Sample("j.webp", _webp_animation(), Format.WEBP, 1),
    Sample("k.avif", encoded(_small().convert("RGB"), "AVIF", quality=100), Format.AVIF, 1),
    Sample("l.jp2", encoded(_small(), "JPEG2000", irreversible=False), Format.JPEG2000, 1),
    Sample("m.pbm", encoded(_small().convert("1"), "PPM"), Format.PNM, 1),
    Sample("n.png", sixteen_bit_png(_small()), Format.PNG, 1),
    Sample("o.pdf", make_pdf(["one", "two"], width=200, height=100), Format.PDF, 2),
    Sample("p.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
           Format.HEIC, 1),
    Sample("q.txt", b"just some notes, not an image\n" * 4, Format.UNKNOWN, 1),
]  # fmt: skip
IDS = [f"{s.name}-{s.format}" for s in SAMPLES]


@pytest.fixture
def inbox(tmp_path: Path) -> InboxConfig:
    return load_config(write_config(tmp_path, "http://127.0.0.1:9"), environ={}).inboxes[0]


def _emulator_pages(data: bytes, target: formats.Target) -> int | None:
    """Pages the emulator's loader finds (with the target's limit), or None when it refuses."""
    limit = formats.max_page_pixels(target)
    try:
        return len(load_document(data, max_pixels=limit, target=target).pages)
    except DocumentError:
        return None


def _engine_pages(data: bytes) -> int | None:
    # The reader sets Pillow's bomb limit for its worker process; this process is not one.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        return sum(1 for _ in read_pages(data, max_pixels=formats.MAX_PAGE_PIXELS))
    except EngineInputError:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_layer_agrees_with_the_table(
    tmp_path: Path, inbox: InboxConfig, sample: Sample
) -> None:
    path = tmp_path / sample.name
    path.write_bytes(sample.data)
    fmt = probe.sniff(path)
    assert fmt is sample.format is formats.sniff(sample.data)
    facts = probe.inspect(path)
    is_image = formats.spec(fmt) is not None and fmt is not Format.PDF
    if is_image and fmt is not Format.HEIC:
        assert facts.problem is None and facts.page_count == max(
            sample.pages, 2 if sample.name == "j.webp" else 1
        )
    # default include patterns: every named format is picked up, a refused one to be refused
    included = policy.candidate_verdict(
        PurePath(sample.name), include=DEFAULT_INCLUDE, exclude=(),
        output_template="{name}.{ext}", outputs_inside_inbox=True,
    ).accepted  # fmt: skip
    pages = facts.page_count or 1
    cloud = formats.delivery(fmt, pages=pages, target=CLOUD)
    engine = formats.delivery(fmt, pages=pages, target=ENGINE)
    assert included is bool(formats.spec(fmt) and formats.spec(fmt).patterns)  # type: ignore[union-attr]

    # the cloud: preflight, conversion, and the emulator standing in for the service
    problem, _ = preflight_problem(facts, inbox, trial=False, target=CLOUD)
    assert (problem is None) is (cloud is not formats.Delivery.REFUSED), problem
    assert (_emulator_pages(sample.data, CLOUD) is not None) is (cloud is formats.Delivery.AS_IS)
    if problem is None:
        mode = upload_mode(facts, inbox, target=CLOUD)
        assert (mode is Mode.PDF) is (fmt is Format.PDF or cloud is formats.Delivery.TO_PDF)
        sent = conversion.for_upload(io.BytesIO(sample.data), mode=mode, target=CLOUD).read()
        assert (sent == sample.data) is (cloud is formats.Delivery.AS_IS)
        expected = sample.pages if mode is Mode.PDF else 1
        assert _emulator_pages(sent, CLOUD) == expected

    # the engine: preflight, the emulator in front of it, and the engine's own reader
    problem, _ = preflight_problem(facts, inbox, trial=False, target=ENGINE)
    assert (problem is None) is (engine is formats.Delivery.AS_IS), problem
    expected_pages = sample.pages if engine is formats.Delivery.AS_IS else None
    assert _emulator_pages(sample.data, ENGINE) == expected_pages
    assert _engine_pages(sample.data) == expected_pages
    if problem is None:
        sent = conversion.for_upload(io.BytesIO(sample.data), mode=Mode.IMAGE, target=ENGINE)
        assert sent.read() == sample.data  # the engine is given every file as it is


def test_a_refused_format_is_named(tmp_path: Path, inbox: InboxConfig) -> None:
    path = tmp_path / "photo.heic"
    path.write_bytes(SAMPLES[-2].data)
    for target in (CLOUD, ENGINE):
        problem, error_class = preflight_problem(
            probe.inspect(path), inbox, trial=False, target=target
        )
        assert problem is not None and problem.startswith("HEIC is not supported")
        assert error_class is ErrorClass.UNSUPPORTED


@pytest.mark.parametrize(
    ("target", "mode", "size"),
    [
        (ENGINE, "RGB", (8_000, 7_500)),  # formats.MAX_PAGE_PIXELS exactly: 240 MB decoded
        (ENGINE, "RGB", (8_000, 7_501)),
        (ENGINE, "1", (7_016, 9_921)),  # an A3 sheet at 600 dpi in black and white: 70 MB
        (ENGINE, "1", (12_000, 12_500)),  # formats.MAX_DECODED_PIXELS exactly
        (ENGINE, "1", (12_001, 12_500)),
        (CLOUD, "1", (9_459, 9_459)),  # just under formats.MAX_CLOUD_PAGE_PIXELS
        (CLOUD, "1", (9_460, 9_460)),
    ],
    ids=[
        "engine-colour-at",
        "engine-colour-over",
        "engine-1-bit-a3-600-dpi",
        "engine-1-bit-at",
        "engine-1-bit-over",
        "cloud-at",
        "cloud-over",
    ],
)
def test_every_layer_applies_the_same_pixel_limit(
    tmp_path: Path, inbox: InboxConfig, target: formats.Target, mode: str, size: tuple[int, int]
) -> None:
    # The engine's limit is on decoded bytes: a 1-bit page may have more pixels than a colour one.
    data = encoded(Image.new(mode, size, "white"), "PNG")
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    limit = formats.max_page_pixels(target, mode)
    is_over = size[0] * size[1] > limit
    problem, error_class = preflight_problem(probe.inspect(path), inbox, trial=False, target=target)
    assert (problem is not None) is is_over
    if is_over:
        what = {"1": "for a 1-bit page", "RGB": "for a colour page"}[mode]
        assert problem == (
            f"too large: {size[0]}x{size[1]} pixels is more than the {target}'s limit of "
            f"{limit:,} pixels {what if target is ENGINE else 'a page'}"
        )
        assert error_class is ErrorClass.UNSUPPORTED
    if mode == "RGB" and not is_over:
        return  # 240 MB decoded by the emulator and the engine: too slow for here
    assert (_emulator_pages(data, target) is None) is is_over
    if target is ENGINE and (is_over or size == (7_016, 9_921)):
        # The engine reads one at the limit decoded in its mode, tile by tile, never whole.
        assert (_engine_pages(data) is None) is is_over


def test_a_later_tiff_page_over_the_limit_is_refused(tmp_path: Path, inbox: InboxConfig) -> None:
    # Page 1 has more pixels, but at a byte a pixel it is under the limit for its mode; the
    # colour page 2 is over its own.
    data = encoded(
        Image.new("1", (9_000, 9_000), 1), "TIFF", compression="tiff_adobe_deflate", save_all=True,
        append_images=[Image.new("RGB", (8_000, 7_501), "white")],
    )  # fmt: skip
    path = tmp_path / "fax.tif"
    path.write_bytes(data)
    problem, _ = preflight_problem(probe.inspect(path), inbox, trial=False, target=ENGINE)
    assert problem is not None and "page 2 8000x7501 pixels" in problem
    assert _emulator_pages(data, ENGINE) is None


def test_check_shows_what_each_format_gets(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = ocrwatch_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert '"format": "WebP"' in result.stdout
    assert '"sent": "converted to PNG (lossless)"' in result.stdout
    assert "converted to one PDF (lossless), sent to RecognizePdf" in result.stdout
    assert '"sent": "refused"' in result.stdout  # HEIC


def test_each_note_fits_the_target_it_is_shown_for() -> None:
    from ocrwatch.formats import Target, table

    def notes(target: Target) -> dict[str, str]:
        return {row["format"]: row.get("note", "") for row in table(target)}

    assert "cloud takes single-page TIFF only" in notes(Target.CLOUD)["TIFF"]
    engine = notes(Target.ENGINE)
    assert not any("cloud" in note for note in engine.values()), engine
    assert engine["GIF"] == "an animation's first frame"  # a note true of both stays


def _pixels(data: bytes, *, frame: int = 0) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.seek(frame)
        return image.mode, image.size, image.tobytes()


@pytest.mark.parametrize("name", ["i.webp", "l.jp2", "m.pbm", "g.tiff"])
def test_conversion_to_png_keeps_every_pixel(name: str) -> None:
    sample = next(s for s in SAMPLES if s.name == name)
    converted = conversion.for_upload(io.BytesIO(sample.data), mode=Mode.IMAGE, target=CLOUD)
    png = converted.read()
    assert formats.sniff(png) is Format.PNG
    assert _pixels(png) == _pixels(sample.data)


def test_a_fax_becomes_a_pdf_with_its_g4_data_untouched() -> None:
    import pikepdf

    sample = next(s for s in SAMPLES if s.name == "f.tif")
    pdf = conversion.for_upload(io.BytesIO(sample.data), mode=Mode.PDF, target=CLOUD).read()
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert len(document.pages) == 3
        for index, each in enumerate(document.pages):
            (image,) = each.get_images().values()
            filters = [str(f) for f in pikepdf.Array(image.Filter)]  # a name or an array
            assert filters == ["/CCITTFaxDecode"]  # the strip embedded, not re-encoded
            mode, size, pixels = _pixels(sample.data, frame=index)
            embedded = pikepdf.PdfImage(image).as_pil_image().convert(mode)
            assert (embedded.size, embedded.tobytes()) == (size, pixels), f"page {index + 1}"
            width_pt = float(each.mediabox[2]) - float(each.mediabox[0])
            assert width_pt == pytest.approx(size[0] * 72 / 200)  # its size at its 200 dpi


@pytest.mark.parametrize("mode", ["I", "F", "YCbCr", "LAB"])
def test_tiff_pages_img2pdf_refuses_go_through_png(mode: str) -> None:
    frames = [page(text, size=(200, 80), font_px=20).convert(mode) for text in ("one", "two")]
    data = encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    pdf = conversion.for_upload(io.BytesIO(data), mode=Mode.PDF, target=CLOUD).read()
    assert _emulator_pages(pdf, CLOUD) == 2


def test_several_pages_need_an_image_inbox_and_credentials_for_the_cloud(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        inboxes=[
            {"name": "image", "path": "inbox"},
            {"name": "labels", "path": "labels", "mode": "label"},
        ],
    )
    (tmp_path / "labels").mkdir()
    image_inbox, label_inbox = load_config(config, environ={}).inboxes
    path = tmp_path / "fax.tif"
    path.write_bytes(next(s for s in SAMPLES if s.name == "f.tif").data)
    facts = probe.inspect(path)
    problem, _ = preflight_problem(facts, image_inbox, trial=True, target=CLOUD)
    assert problem == (
        "a TIFF of 3 pages is sent as a PDF, which needs credentials: "
        "RecognizePdf has no trial mode"
    )
    for target in (CLOUD, ENGINE):
        problem, error_class = preflight_problem(facts, label_inbox, trial=False, target=target)
        assert problem == (
            "TIFF files of several pages can only be recognised in image inboxes "
            "(this one is label)"
        )
        assert error_class is ErrorClass.UNSUPPORTED
