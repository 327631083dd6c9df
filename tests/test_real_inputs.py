"""Real inputs, real answers: the odd files users drop, through the daemon with the local engine.

The files are generated here with real text on them (``odd_inputs``): a CCITT G4 fax page and
a multi-page fax, a 16-bit greyscale PNG, a CMYK JPEG, a phone photo stored sideways with an
EXIF orientation, a progressive JPEG, a PNG whose paper is transparent, a lossless WebP, PDF
pages turned by ``/Rotate``, scanned sideways, or set in two columns, a huge monochrome page,
and broken files (empty, a truncated JPEG, a PDF that is no PDF). One ``ocrwatch run`` with
``service: {url: embedded}`` takes them all, so the engine's models load once; each test waits
for its own file's outcome and checks what a user would: the file is done with a sidecar
whose words are there (recall) and in order, or it is in the error folder with a reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_harness import write_config
from daemon_process import Daemon, daemon
from engine_pages import word_recall
from odd_inputs import (
    alpha_png,
    encoded,
    exif_rotated_jpeg,
    g4_tiff,
    order_score,
    page,
    pdf_of,
    sixteen_bit_png,
    truncated,
    two_columns,
)
from PIL import Image

pytest.importorskip("rapidocr")

# The engine reads about a page every few seconds on a busy 2-core machine; every file of
# the module is in one queue, so a test may wait for the files ahead of it.
OUTCOME_DEADLINE_SECONDS = 240.0
# A broken file must reach the error folder within minutes, not max_settle_seconds (an hour).
BROKEN_DEADLINE_SECONDS = 150.0
MIN_RECALL = 0.9
MIN_ORDER = 0.9

FAX = "Invoice 4471 from Harbour Supplies\nPayment due within thirty days\nThank you"
PAGES = [
    "First page of the contract\nbetween the tenant and the owner",
    "Second page lists the rooms\nkitchen bedroom and garden",
    "Third page carries the signatures\nsigned in Leeds on Monday",
]
LEFT = "Left column starts here\nwith the story of the mill\nbuilt beside the river"
RIGHT = "Right column goes on\nabout the new bridge\nopened last summer"
HUGE = "Survey sheet twelve\nnorth boundary of the farm"


def _huge_page() -> bytes:
    """An A3 sheet scanned at 600 dpi in black and white: 7016 x 9921 pixels, 70 MP."""
    sheet = Image.new("1", (7016, 9921), 1)
    sheet.paste(page(HUGE, size=(4800, 700), font_px=180, origin=(60, 60)).convert("1"),
                (600, 800))  # fmt: skip
    return encoded(sheet, "TIFF", compression="group4", dpi=(600, 600))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    pages: tuple[str, ...]  # the text of each page, in order


GOOD = [
    Case("fax-g4.tif", lambda: g4_tiff([page(FAX)]), (FAX,)),
    Case("fax-3-pages.tif", lambda: g4_tiff([page(p) for p in PAGES]), tuple(PAGES)),
    Case("grey-16-bit.png", lambda: sixteen_bit_png(page(PAGES[0])), (PAGES[0],)),
    Case("cmyk.jpg", lambda: encoded(page(PAGES[1], mode="CMYK"), "JPEG", quality=92),
         (PAGES[1],)),
    Case("phone-exif-rotated.jpg", lambda: exif_rotated_jpeg(page(PAGES[2])), (PAGES[2],)),
    Case("progressive.jpg",
         lambda: encoded(page(FAX, mode="RGB"), "JPEG", quality=90, progressive=True), (FAX,)),
    Case("transparent.png", lambda: alpha_png(page(PAGES[0])), (PAGES[0],)),
    Case("lossless.webp", lambda: encoded(page(PAGES[1], mode="RGB"), "WEBP", lossless=True),
         (PAGES[1],)),
    Case("rotate-90.pdf",
         lambda: pdf_of([page(FAX).transpose(Image.Transpose.ROTATE_90)], rotate=90), (FAX,)),
    Case("scanned-sideways.pdf",
         lambda: pdf_of([page(PAGES[2]).transpose(Image.Transpose.ROTATE_270)]), (PAGES[2],)),
    Case("two-columns.pdf", lambda: pdf_of([two_columns(LEFT, RIGHT)]), (f"{LEFT}\n{RIGHT}",)),
    Case("huge-1-bit.tif", _huge_page, (HUGE,)),
]  # fmt: skip
BROKEN = {
    "empty.png": lambda: b"",
    "truncated.jpg": lambda: truncated(encoded(page(FAX, mode="RGB"), "JPEG"), keep=0.6),
    "invalid.pdf": lambda: b"%PDF-1.4\nthis was never a PDF, only its first line\n",
}
MARKS: dict[str, pytest.MarkDecorator] = {}


@dataclass
class Run:
    root: Path
    process: Daemon
    started_at: float

    def outcome(self, inbox: str, name: str, *, deadline_seconds: float) -> Path | None:
        """The sidecar or the reason file of ``name``, or None past the deadline."""
        sidecar = self.root / inbox / f"{name}.txt"
        reason = self.root / f"{inbox}.errors" / f"{name}.error.json"
        while time.monotonic() < self.started_at + deadline_seconds:
            for found in (sidecar, reason):
                if found.exists():
                    return found
            if not self.process.is_running():
                raise AssertionError(f"the daemon exited:\n{self.process.log_text()[-4000:]}")
            time.sleep(0.2)
        return None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("real-inputs")
    for inbox in ("odd", "broken"):
        (root / inbox).mkdir()
    for case in GOOD:
        (root / "odd" / case.name).write_bytes(case.make())
    for name, make in BROKEN.items():
        (root / "broken" / name).write_bytes(make())
    config = write_config(
        root,
        "embedded",
        credentials=False,
        service={"read_timeout_seconds": 60},
        inboxes=[
            {"name": "odd", "path": "odd", "error_dir": "odd.errors", "settle_seconds": 0.5},
            # max_settle_seconds as it is by default: a broken file must not need it
            {
                "name": "broken",
                "path": "broken",
                "error_dir": "broken.errors",
                "settle_seconds": 0.5,
                "max_settle_seconds": 3600,
                # A broken file fails once it has been unchanged this long (5 minutes by
                # default; shortened so the suite does not sit through them).
                "incomplete_after_seconds": 10,
            },
        ],
    )
    with daemon(config, root / "daemon.log") as process:
        yield Run(root, process, time.monotonic())


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=MARKS.get(c.name, ())) for c in GOOD],
)
def test_an_odd_file_is_read_in_full_and_in_order(run: Run, case: Case) -> None:
    found = run.outcome("odd", case.name, deadline_seconds=OUTCOME_DEADLINE_SECONDS)
    assert found is not None, f"{case.name}: no outcome"
    assert found.suffix == ".txt", f"{case.name} failed: {found.read_text()}"
    pages = found.read_text(encoding="utf-8").split("\f")
    assert len(pages) == len(case.pages), pages  # pages separated as a PDF's are
    for got, expected in zip(pages, case.pages, strict=True):
        assert word_recall(got, expected) >= MIN_RECALL, (got, expected)
        assert order_score(got, expected) >= MIN_ORDER, (got, expected)


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_file_goes_to_the_error_folder_with_a_reason(run: Run, name: str) -> None:
    found = run.outcome("broken", name, deadline_seconds=BROKEN_DEADLINE_SECONDS)
    assert found is not None, f"{name} still waits after {BROKEN_DEADLINE_SECONDS} s"
    assert found.name == f"{name}.error.json"
    reason = json.loads(found.read_text())
    assert reason["class"] and reason["message"]
    assert (run.root / "broken.errors" / name).exists()
