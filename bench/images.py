"""The benchmark's documents: a pool of distinct small PNGs, and one large PNG.

Every pool image shows two lines of text that no other image has and carries them in its
``ocr-text`` chunk (``ocrwatch.emulator.samples``), so the emulator's fixture recognizer
returns exactly that text and the daemon's duplicate cache never short-circuits a file. The
pool is built once into a cache folder and reused by every workload (each run starts with
a fresh state store, so reuse across runs is not a duplicate).

The large PNG is random RGB noise: it does not compress, so its file size is its pixel
size, and its text chunk lets the emulator answer it like any other.
"""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

POOL_WIDTH_PX = 320
POOL_HEIGHT_PX = 96


def pool_text(index: int) -> str:
    return f"bench document {index:06d}\ncheck {index * 7919 % 1_000_003:07d}"


def pool_name(index: int) -> str:
    return f"doc-{index:06d}.png"


def ensure_pool(folder: Path, count: int) -> list[Path]:
    """``count`` distinct PNGs in ``folder`` (made only where missing); their paths in order."""
    from ocrwatch.emulator.samples import make_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / pool_name(index)
        if not path.exists():
            data = make_png(pool_text(index), width=POOL_WIDTH_PX, height=POOL_HEIGHT_PX)
            temp = path.with_suffix(".tmp")
            temp.write_bytes(data)
            temp.replace(path)
        paths.append(path)
    return paths


def stage(pool: list[Path], staging: Path, *, prefix: str = "") -> list[Path]:
    """Copy pool images into ``staging`` (same filesystem as the inbox) for a later rename."""
    staging.mkdir(parents=True, exist_ok=True)
    staged = []
    for source in pool:
        target = staging / f"{prefix}{source.name}"
        shutil.copyfile(source, target)
        staged.append(target)
    return staged


def make_large_png(path: Path, *, size_bytes: int, text: str, seed: int = 6) -> int:
    """A noise PNG of about ``size_bytes`` with ``text`` embedded; returns its real size."""
    from PIL import Image, PngImagePlugin

    from ocrwatch.emulator.samples import TEXT_KEY

    side = int((size_bytes / 3) ** 0.5)
    pixels = random.Random(seed).randbytes(side * side * 3)
    image = Image.frombytes("RGB", (side, side), pixels)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(TEXT_KEY, text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, compress_level=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path.stat().st_size
