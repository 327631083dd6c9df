"""Which way up a page is: judged from its first reading, checked on a few of its lines.

The text-line direction classifier turns some upright lines upside down (and garbles them), so
it stays off. Instead the first reading of a page, which is needed anyway, says whether the
page is in doubt: its text was read with low confidence (upside-down text reads as confident
noise, about 0.7 against 0.99 for upright print), or most of its text runs up and down (a
page lying on its side). Only then are a few of its longest lines cut out and recognised
again in each candidate orientation (0 or 180 degrees for lines running across, 0, 90 or 270
for lines running up and down), and a turn wins only with a clearly higher mean confidence
than the page as it is. That costs a handful of line recognitions, no detection, and
nothing at all for an upright page.

Runs in the worker process only (NumPy).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ocrwatch.engine import imaging
from ocrwatch.engine.imaging import Pixels

DOUBTFUL_CONFIDENCE = 0.85  # upright print reads at 0.95-0.99, upside-down text near 0.7
SAMPLE_LINES = 6
MIN_GAIN = 0.08  # a turn must read this much more confidently than the page as it is
_CLEAR_ASPECT = 1.5  # a fragment this much longer one way than the other shows its direction


@dataclass(frozen=True, slots=True)
class Reading:
    """One fragment as first read: its text, corners (4x2, image pixels) and confidence."""

    text: str
    quad: npt.NDArray[np.float64]
    score: float

    @property
    def size(self) -> tuple[float, float]:
        """Width and height of the fragment's axis-aligned bounds."""
        spans = self.quad.max(axis=0) - self.quad.min(axis=0)
        return float(spans[0]), float(spans[1])


LineScorer = Callable[[Sequence[Pixels]], list[float]]  # confidence of each line image


def runs_up_and_down(readings: Sequence[Reading]) -> bool:
    """Whether most of the clearly directed text runs up and down the image."""
    across = down = 0
    for reading in readings:
        width, height = reading.size
        if width >= _CLEAR_ASPECT * height:
            across += len(reading.text)
        elif height >= _CLEAR_ASPECT * width:
            down += len(reading.text)
    return down > across


def is_doubtful(readings: Sequence[Reading]) -> bool:
    """Whether this first reading may be of a page that is not upright."""
    characters = sum(len(reading.text) for reading in readings)
    if characters == 0:
        return False  # nothing was read: no orientation would read more of nothing
    confidence = sum(reading.score * len(reading.text) for reading in readings) / characters
    return confidence < DOUBTFUL_CONFIDENCE or runs_up_and_down(readings)


def upright_turns(image: Pixels, readings: Sequence[Reading], *, score: LineScorer) -> int:
    """Clockwise quarter turns that set ``image`` upright (0 when it already is, or in doubt)."""
    samples = _samples(image, readings)
    if not samples:
        return 0
    # As it is (0) always competes: single digits in a table are taller than wide too.
    candidates = (0, 1, 3) if runs_up_and_down(readings) else (0, 2)
    confidence = {
        turns: statistics.fmean(score([imaging.turn_quarters(crop, turns) for crop in samples]))
        for turns in candidates
    }
    best = max(candidates, key=lambda turns: confidence[turns])
    if confidence[best] < confidence[0] + MIN_GAIN:
        return 0
    return best


def _samples(image: Pixels, readings: Sequence[Reading]) -> list[Pixels]:
    """The longest fragments, cut out along their axis-aligned bounds with a small margin."""
    longest = sorted(readings, key=lambda reading: len(reading.text), reverse=True)
    height, width = image.shape[:2]
    crops: list[Pixels] = []
    for reading in longest[:SAMPLE_LINES]:
        low = reading.quad.min(axis=0)
        high = reading.quad.max(axis=0)
        margin = 0.15 * min(high - low)
        left, top = (max(0, int(value - margin)) for value in low)
        right = min(width, int(high[0] + margin) + 1)
        bottom = min(height, int(high[1] + margin) + 1)
        if right - left >= 4 and bottom - top >= 4:
            crops.append(np.ascontiguousarray(image[top:bottom, left:right]))
    return crops
