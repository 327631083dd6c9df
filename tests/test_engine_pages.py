"""The local engine on real page layouts: columns, a sidebar, a table, turned pages, a huge page.

Each page is rendered here with known text (``engine_pages``) and read by one real engine
worker. Reading order is held to a word-order similarity of 0.95 with the true text, and
every page to a word recall of 0.95. The same pages read with ``find_blocks`` off come out
line by line straight across (the service's ``NoDsrNoFilter``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_pages import (
    a3_scan_page,
    g4_tiff_bytes,
    huge_sparse_page,
    pdf_bytes,
    png_bytes,
    sidebar_page,
    table_page,
    two_column_page,
    word_order_similarity,
    word_recall,
)
from PIL import Image

from ocrwatch.embedded import EngineRecognizer
from ocrwatch.emulator.document import load_document
from ocrwatch.engine import DEFAULT_MAX_PIXELS, EngineOptions, EnginePool
from ocrwatch.engine.values import Box
from ocrwatch.model import DsrMode, RecognitionSettings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    with EnginePool(workers=1) as engine:
        yield engine


LAYOUTS = {"two_column": two_column_page, "sidebar": sidebar_page, "table": table_page}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_columns_and_blocks_are_read_one_after_another(pool: EnginePool, layout: str) -> None:
    image, truth = LAYOUTS[layout]()
    text = pool.recognize(png_bytes(image)).text
    order, recall = word_order_similarity(text, truth), word_recall(text, truth)
    print(f"\n{layout}: word order {order:.3f}, recall {recall:.3f}")
    assert recall >= 0.95, text
    assert order >= 0.95, text


def test_a_table_keeps_its_rows(pool: EnginePool) -> None:
    image, truth = table_page()
    lines = pool.recognize(png_bytes(image)).pages[0].lines
    assert [line.text for line in lines][-6:] == truth.split("\n")[-6:]


def test_without_structure_analysis_lines_run_straight_across(pool: EnginePool) -> None:
    image, truth = two_column_page()
    text = pool.recognize(png_bytes(image), EngineOptions(find_blocks=False)).text
    assert word_recall(text, truth) >= 0.95
    assert word_order_similarity(text, truth) < 0.8  # the columns interleave, as asked


@pytest.mark.parametrize(
    ("dsr_mode", "in_blocks"), [(DsrMode.REGIONS, True), (DsrMode.NO_DSR_NO_FILTER, False)]
)
def test_the_services_structure_setting_chooses_blocks_or_lines(
    pool: EnginePool, dsr_mode: DsrMode, in_blocks: bool
) -> None:
    image, truth = two_column_page()
    document = load_document(png_bytes(image), max_pixels=DEFAULT_MAX_PIXELS)
    found = EngineRecognizer(pool).recognize(
        document, settings=RecognitionSettings(dsr_mode=dsr_mode)
    )
    text = "\n".join(line.text for line in found.pages[0].lines)
    assert (word_order_similarity(text, truth) >= 0.95) is in_blocks


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_a_page_lying_on_its_side_or_upside_down_is_read_upright(
    pool: EnginePool, quarter_turns: int
) -> None:
    image, truth = two_column_page()
    lying = image.rotate(-90 * quarter_turns, expand=True)  # clockwise
    page = pool.recognize(png_bytes(lying)).pages[0]
    recall, order = word_recall(page.text, truth), word_order_similarity(page.text, truth)
    print(f"\n{90 * quarter_turns} degrees: recall {recall:.3f}, word order {order:.3f}")
    assert (page.width_px, page.height_px) == lying.size  # boxes stay on the page as sent
    assert all(
        line.box.right <= lying.width and line.box.bottom <= lying.height for line in page.lines
    )
    assert recall >= 0.95, page.text
    assert order >= 0.95, page.text


def test_a_rotation_given_by_the_caller_is_applied_as_given(pool: EnginePool) -> None:
    image, truth = two_column_page()
    upside_down = image.rotate(180)
    text = pool.recognize(png_bytes(upside_down), EngineOptions(rotate_degrees=180)).text
    assert word_order_similarity(text, truth) >= 0.95
    # Told not to turn, the engine does not turn on its own: the text stays unreadable.
    text = pool.recognize(png_bytes(upside_down), EngineOptions(detect_orientation=False)).text
    assert word_recall(text, truth) < 0.5


@pytest.fixture(scope="module")
def huge_pdf() -> tuple[bytes, str]:
    """A 40 x 40 inch sheet scanned at 300 dpi, 1-bit, with four short lines of text."""
    image, truth = huge_sparse_page()
    return pdf_bytes(image, dpi=300), truth


def test_a_huge_sparse_scan_is_read_at_a_readable_resolution(
    pool: EnginePool, huge_pdf: tuple[bytes, str]
) -> None:
    # Rendered at 170 dpi (46 MP, under the limit) it was once shrunk whole to the
    # detector's 2000 pixels, and its text to 8 pixels: an empty page, marked done.
    data, truth = huge_pdf
    text = pool.recognize(data).text
    print(f"\nhuge page: recall {word_recall(text, truth):.3f}: {text!r}")
    assert word_recall(text, truth) >= 0.95, text


def test_a_page_over_the_pixel_limit_is_rendered_tile_by_tile_and_read(
    huge_pdf: tuple[bytes, str],
) -> None:
    # With a 20 MP limit the same page (46 MP at 170 dpi) was once rendered at 112 dpi, whole.
    data, truth = huge_pdf
    with EnginePool(workers=1, max_pixels=20_000_000) as small:
        page = small.recognize(data).pages[0]
        turned = small.recognize(data, EngineOptions(rotate_degrees=90)).pages[0]
    assert (page.width_px, page.height_px) == (6800, 6800)  # 170 dpi
    assert word_recall(page.text, truth) >= 0.95, page.text
    assert word_order_similarity(page.text, truth) >= 0.95, page.text
    # Turned as asked: the last line, once bottom right, is now bottom left.
    sheet = next(line for line in turned.lines if "Sheet" in line.text)
    assert sheet.box.right < 1000 and sheet.box.top > 4500, sheet


def test_a_large_image_with_small_text_is_read(pool: EnginePool) -> None:
    # 7000 x 7000 (49 MP, under the pixel limit): shrunk whole to the detector's 2000 pixels,
    # its 48-pixel text would be 14 pixels high and partly lost.
    image, truth = huge_sparse_page(side_px=7000)
    page = pool.recognize(png_bytes(image.convert("L"))).pages[0]
    assert word_recall(page.text, truth) >= 0.95, page.text
    assert word_order_similarity(page.text, truth) >= 0.95, page.text
    sheet = next(line for line in page.lines if "Sheet" in line.text)
    assert sheet.box.left >= 3900 and sheet.box.top >= 6300  # boxes in the page's own pixels


def test_a_large_1_bit_scan_is_read_in_its_own_mode_tile_by_tile(pool: EnginePool) -> None:
    # 70 MP: once refused (over the 60 MP limit, which counted a 1-bit page as colour). Now
    # kept decoded at a byte a pixel, its 8 pt text read in tiles at a readable scale.
    image, truth = a3_scan_page()
    data = g4_tiff_bytes(image, dpi=600)
    page = pool.recognize(data).pages[0]
    print(f"\nA3 1-bit scan: recall {word_recall(page.text, truth):.3f}: {page.text!r}")
    assert (page.width_px, page.height_px) == (7016, 9921)
    assert word_recall(page.text, truth) >= 0.95, page.text
    assert word_order_similarity(page.text, truth) >= 0.95, page.text
    sheet = next(line for line in page.lines if "Sheet" in line.text)
    assert sheet.box.left >= 5300 and sheet.box.top >= 9200, sheet  # in the page's pixels
    # Scanned sideways and turned as asked, tile by tile (never the whole page turned).
    sideways = g4_tiff_bytes(image.transpose(Image.Transpose.ROTATE_90), dpi=600)
    turned = pool.recognize(sideways, EngineOptions(rotate_degrees=90)).pages[0]
    assert (turned.width_px, turned.height_px) == (7016, 9921)
    assert word_recall(turned.text, truth) >= 0.95, turned.text
    sheet = next(line for line in turned.lines if "Sheet" in line.text)
    assert sheet.box.left >= 5300 and sheet.box.top >= 9200, sheet


def test_regions_of_a_large_1_bit_scan_are_cut_from_it_and_read(pool: EnginePool) -> None:
    image, _ = a3_scan_page()
    region = Box(left=5200, top=9100, right=7016, bottom=9700)  # around "Sheet 3 of 9" only
    result = pool.recognize(g4_tiff_bytes(image, dpi=600), EngineOptions(regions=(region,)))
    [line] = result.pages[0].lines
    assert line.text == "Sheet 3 of 9"
    assert line.box.left >= 5300 and line.box.top >= 9200, line.box  # in the page's pixels
