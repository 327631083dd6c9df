"""The recognition seam: what a recognizer returns, and the fixture recognizer the tests use.

A ``Recognizer`` turns a checked ``Document`` into pages of text lines with pixel boxes. It is
called on a slot's worker thread, several at once, so it must be thread-safe. A real OCR
engine plugs in here; the emulator handles everything else (rotation, regions, trial masking,
output formats).

``FixtureRecognizer`` reads the ground truth embedded in the file (see ``document``) and lays
its lines out evenly: line i of n on a page h pixels high spans y from i*h/n to (i+1)*h/n, over
the full width, so regions select lines deterministically. A PDF's ``/Subject`` holds one text
per page, separated by form feeds. Without embedded text the text is derived from the file's
SHA-256, so it is still exact and repeatable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ocrwatch.emulator.document import Document
from ocrwatch.model import RecognitionSettings

_DERIVED_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor",
    "island", "jasper", "kestrel", "lagoon", "meadow", "nectar", "orchid", "prairie",
)  # fmt: skip
_DERIVED_WORDS_PER_LINE = 4
_DERIVED_LINES = 3


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in page pixels: left and top inclusive, right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    box: Box


@dataclass(frozen=True, slots=True)
class PageText:
    width_px: int
    height_px: int
    lines: tuple[Line, ...]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True, slots=True)
class Recognition:
    """One ``PageText`` per page of the document, in order."""

    pages: tuple[PageText, ...]

    @property
    def text(self) -> str:
        return "\f".join(page.text for page in self.pages)


class Recognizer(Protocol):
    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        """Recognise every page of ``document``; must be safe to call from several threads."""
        ...


def derived_text(sha256: str, *, page_index: int = 0) -> str:
    """A few lines of words chosen by the content's hash: stable, and different per file."""
    digest = hashlib.sha256(f"{sha256}:{page_index}".encode()).digest()
    words = [_DERIVED_WORDS[byte % len(_DERIVED_WORDS)] for byte in digest]
    lines = [
        " ".join(words[i * _DERIVED_WORDS_PER_LINE : (i + 1) * _DERIVED_WORDS_PER_LINE])
        for i in range(_DERIVED_LINES)
    ]
    return "\n".join(lines)


def lay_out_lines(text: str, *, width_px: int, height_px: int) -> PageText:
    """Spread the lines of ``text`` over equal horizontal bands of a page."""
    if text.endswith("\n"):
        text = text[:-1]
    texts: Sequence[str] = text.split("\n") if text else ()
    count = len(texts)
    lines = tuple(
        Line(
            text=line.rstrip("\r"),
            box=Box(
                left=0,
                top=index * height_px // count,
                right=width_px,
                bottom=(index + 1) * height_px // count,
            ),
        )
        for index, line in enumerate(texts)
    )
    return PageText(width_px=width_px, height_px=height_px, lines=lines)


class FixtureRecognizer:
    """Reports the text embedded in the file, laid out line by line (see the module docstring)."""

    def recognize(self, document: Document, *, settings: RecognitionSettings) -> Recognition:
        del settings  # the ground truth does not depend on preprocessing
        embedded = document.embedded_text
        if embedded is None:
            page_texts: list[str | None] = [None] * len(document.pages)
        elif document.format == "PDF" or len(document.pages) > 1:
            page_texts = list(embedded.split("\f"))
        else:
            page_texts = [embedded]
        pages = []
        for index, page in enumerate(document.pages):
            text = page_texts[index] if index < len(page_texts) else None
            if text is None:
                text = derived_text(document.sha256, page_index=index)
            pages.append(lay_out_lines(text, width_px=page.width_px, height_px=page.height_px))
        return Recognition(pages=tuple(pages))
