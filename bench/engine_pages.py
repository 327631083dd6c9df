"""``python -m bench.engine_pages``: the local engine on real layouts, turned and huge pages.

Each page goes through a real ``EnginePool`` (one worker, one thread) and the worker's CPU
seconds and peak RSS while reading it (``VmHWM``, reset before each page; the models' own
footprint included) are read from ``/proc``; the text is
scored against the truth with the measures the tests use (``tests/engine_pages.py``: word
order similarity and word recall). The pages are the tests' own (an A3 sheet scanned at 600
dpi in 1-bit among them), plus a 35000 x 35000 1-bit
scan (116 inches square at 300 dpi), written here row by row as a Flate-compressed PDF so
that making it takes a few MB. Run it on a quiet machine; CPU times on a loaded one are
indicative only. Prints one Markdown table.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.server import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))  # the page generators and measures of the tests

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
from test_engine_accuracy import font

from ocrwatch.engine import EngineOptions, EnginePool

HUGE_LINES = (
    "Site plan of the east wing, drawing 17",
    "Revision C approved by the structural engineer",
    "All dimensions in millimetres unless noted",
    "Sheet 3 of 9",
)


def huge_scan_pdf(side_px: int) -> bytes:
    """A 1-bit ``side_px`` square scan at 300 dpi with ``HUGE_LINES``, built row by row."""
    face = font(48)
    places = [(side_px // 4, side_px // 3 + 80 * index) for index in range(3)]
    places.append((side_px - 3000, side_px - 600))
    stamps = []
    for (x, y), text in zip(places, HUGE_LINES, strict=True):
        stamp = Image.new("L", (int(face.getlength(text)) + 10, 70), 255)
        ImageDraw.Draw(stamp).text((0, 0), text, font=face, fill=0)
        stamps.append((x, y, np.asarray(stamp) >= 128))
    packer = zlib.compressobj(6)
    chunks = []
    paper = np.ones(side_px, dtype=bool)
    for row in range(side_px):
        bits = paper
        for x, y, stamp in stamps:
            if y <= row < y + stamp.shape[0]:
                bits = bits.copy() if bits is paper else bits
                bits[x : x + stamp.shape[1]] = stamp[row - y]
        chunks.append(packer.compress(np.packbits(bits).tobytes()))
    chunks.append(packer.flush())
    image = b"".join(chunks)
    points = side_px / 300 * 72
    content = f"q {points:.2f} 0 0 {points:.2f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {points:.2f} {points:.2f}] "
        "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {side_px} /Height {side_px} "
        f"/BitsPerComponent 1 /ColorSpace /DeviceGray /Filter /FlateDecode "
        f"/Length {len(image)} >>\nstream\n".encode()
        + image
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    table = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{table}\n%%EOF\n".encode()
    return bytes(out)


def _turned(make: Callable[[], tuple[Image.Image, str]], quarter_turns: int) -> tuple[bytes, str]:
    image, truth = make()
    return png_bytes(image.rotate(-90 * quarter_turns, expand=True)), truth


def cases() -> list[tuple[str, bytes, str, EngineOptions]]:
    two_column, two_truth = two_column_page()
    sidebar, sidebar_truth = sidebar_page()
    table, table_truth = table_page()
    large, large_truth = huge_sparse_page(side_px=7000)
    huge, huge_truth = huge_sparse_page()
    a3, a3_truth = a3_scan_page()
    listed = [
        ("two-column, lines straight across", png_bytes(two_column), two_truth,
         EngineOptions(find_blocks=False, detect_orientation=False)),
        ("two-column", png_bytes(two_column), two_truth, EngineOptions()),
        ("column + sidebar", png_bytes(sidebar), sidebar_truth, EngineOptions()),
        ("table", png_bytes(table), table_truth, EngineOptions()),
    ]  # fmt: skip
    for turns in (1, 2, 3):
        data, truth = _turned(two_column_page, turns)
        listed.append((f"two-column at {90 * turns}°, no detection", data, truth,
                       EngineOptions(detect_orientation=False)))  # fmt: skip
        listed.append((f"two-column at {90 * turns}°", data, truth, EngineOptions()))
    listed += [
        ("7000² PNG, 48 px text", png_bytes(large.convert("L")), large_truth, EngineOptions()),
        ("A3 1-bit G4 TIFF, 600 dpi, 8 pt (70 MP)", g4_tiff_bytes(a3, dpi=600), a3_truth,
         EngineOptions()),
        ("12000² 1-bit PDF, 300 dpi", pdf_bytes(huge, dpi=300), huge_truth, EngineOptions()),
        ("35000² 1-bit PDF, 300 dpi", huge_scan_pdf(35000), "\n".join(HUGE_LINES),
         EngineOptions()),
    ]  # fmt: skip
    return listed


def _worker_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and peak RSS in KiB of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    peak = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    return (int(fields[11]) + int(fields[12])) / ticks, peak


def main() -> int:
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| page | CPU s | wall s | worker peak RSS MiB | word order | recall |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(), EnginePool(workers=1, threads_per_worker=1) as pool:
        for name, data, truth, options in cases():
            (pid,) = pool.worker_pids
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS starts again from now
            cpu_before, _ = _worker_usage(pid)
            started = time.monotonic()
            text = pool.recognize(data, options).text
            wall = time.monotonic() - started
            cpu_after, peak_kib = _worker_usage(pid)
            order, recall = word_order_similarity(text, truth), word_recall(text, truth)
            print(
                f"| {name} | {cpu_after - cpu_before:.1f} | {wall:.1f} | {peak_kib / 1024:.0f} "
                f"| {order:.2f} | {recall:.2f} |",
                flush=True,
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
