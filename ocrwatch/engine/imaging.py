"""Image operations before recognition, each returning where its pixels came from.

Images are OpenCV-style ``uint8`` arrays, BGR (three channels). Every geometric operation
returns the new image and a 2x3 affine matrix that maps its pixel coordinates back to its
input's, so boxes found on a turned, straightened or enlarged image can be reported on the
page the user sent; ``compose`` chains them. Turned images grow to keep every corner, and the
new area is white, which reads as paper.

Runs in the worker process only (it imports OpenCV and NumPy).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]
Affine = npt.NDArray[np.float64]  # 2x3: [x', y'] = A @ [x, y, 1]

WHITE = (255, 255, 255)
MAX_DESKEW_DEGREES = 15.0
_SKEW_STEP_DEGREES = 0.25
_SKEW_SAMPLE_WIDTH_PX = 800
_MIN_SKEW_GAIN = 1.1  # the best angle must sharpen the row profile by 10% over no turn


def identity() -> Affine:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def compose(outer: Affine, inner: Affine) -> Affine:
    """The transform that applies ``inner`` first, then ``outer``."""
    outer3 = np.vstack([outer, [0.0, 0.0, 1.0]])
    inner3 = np.vstack([inner, [0.0, 0.0, 1.0]])
    combined: Affine = (outer3 @ inner3)[:2]
    return combined


def map_points(points: npt.NDArray[np.float64], affine: Affine) -> npt.NDArray[np.float64]:
    """Apply ``affine`` to an (N, 2) array of points."""
    return points @ affine[:, :2].T + affine[:, 2]


def turn_quarters(image: Pixels, quarter_turns: int) -> Pixels:
    """Turn clockwise by a multiple of 90 degrees, exactly (no resampling)."""
    return np.ascontiguousarray(np.rot90(image, k=-(quarter_turns % 4)))


def quarter_turn_back(shape: tuple[int, ...], quarter_turns: int) -> Affine:
    """Maps pixels of ``turn_quarters(image, quarter_turns)`` back onto ``image`` (of ``shape``)."""
    height, width = float(shape[0]), float(shape[1])
    turns = quarter_turns % 4
    if turns == 1:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, height]])
    if turns == 2:
        return np.array([[-1.0, 0.0, width], [0.0, -1.0, height]])
    if turns == 3:
        return np.array([[0.0, -1.0, width], [1.0, 0.0, 0.0]])
    return identity()


def rotate(image: Pixels, degrees_clockwise: float) -> tuple[Pixels, Affine]:
    """Turn by any angle about the centre, growing the canvas; returns (image, to_input)."""
    height, width = image.shape[:2]
    # OpenCV's positive angle is counter-clockwise.
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees_clockwise, 1.0)
    cos_a, sin_a = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width = math.ceil(width * cos_a + height * sin_a)
    new_height = math.ceil(width * sin_a + height * cos_a)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    turned = cv2.warpAffine(
        image,
        matrix,
        (new_width, new_height),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=WHITE,
    )
    back = np.asarray(cv2.invertAffineTransform(matrix), dtype=np.float64)
    return turned.astype(np.uint8, copy=False), back


def upscale(image: Pixels, factor: float) -> tuple[Pixels, Affine]:
    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    enlarged = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    back = np.array([[width / size[0], 0.0, 0.0], [0.0, height / size[1], 0.0]])
    return enlarged.astype(np.uint8, copy=False), back


def downscale(image: Pixels, factor: float) -> tuple[Pixels, Affine]:
    """Shrink by ``factor`` (< 1), averaging pixels so thin strokes survive."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    shrunk = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    back = np.array([[width / size[0], 0.0, 0.0], [0.0, height / size[1], 0.0]])
    return shrunk.astype(np.uint8, copy=False), back


def _gray(image: Pixels) -> Pixels:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.uint8, copy=False)


def _bgr(gray: Pixels) -> Pixels:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR).astype(np.uint8, copy=False)


def correct_contrast(image: Pixels) -> Pixels:
    """Local contrast equalisation (CLAHE) of the lightness; faint print gets darker."""
    gray = _gray(image)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return _bgr(clahe.apply(gray).astype(np.uint8, copy=False))


def binarize(image: Pixels) -> Pixels:
    """Black text on white: Otsu's global threshold after a light blur against speckle."""
    blurred = cv2.GaussianBlur(_gray(image), (3, 3), 0)
    _, black_white = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _bgr(black_white.astype(np.uint8, copy=False))


def estimate_skew_degrees(image: Pixels) -> float:
    """The clockwise skew of the text rows, from the sharpest horizontal ink profile.

    Works on a small copy: ink is marked by Otsu's threshold, then the image is turned by each
    candidate angle up to ``MAX_DESKEW_DEGREES`` and the one whose row sums vary the most
    wins. Returns 0.0 when no angle beats the unturned image clearly (photos, blank pages).
    """
    gray = _gray(image)
    height, width = gray.shape
    scale = min(1.0, _SKEW_SAMPLE_WIDTH_PX / max(width, 1))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)
    _, marked = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ink = marked.astype(np.float32)
    if ink.mean() < 0.002 or ink.mean() > 0.5:
        return 0.0  # blank, or mostly dark: no rows of text to line up

    def sharpness(degrees: float) -> float:
        rows_height, rows_width = ink.shape
        matrix = cv2.getRotationMatrix2D((rows_width / 2, rows_height / 2), degrees, 1.0)
        turned = cv2.warpAffine(ink, matrix, (rows_width, rows_height), flags=cv2.INTER_NEAREST)
        return float(np.var(turned.sum(axis=1)))

    def best_of(candidates: npt.NDArray[np.float64]) -> tuple[float, float]:
        scores = [(sharpness(float(angle)), float(angle)) for angle in candidates]
        score, angle = max(scores)
        return angle, score

    coarse, _ = best_of(np.arange(-MAX_DESKEW_DEGREES, MAX_DESKEW_DEGREES + 0.01, 1.0))
    fine, fine_score = best_of(np.arange(coarse - 1.0, coarse + 1.01, _SKEW_STEP_DEGREES))
    if fine_score < _MIN_SKEW_GAIN * sharpness(0.0):
        return 0.0
    # Turning the image counter-clockwise by ``fine`` straightens it: it leans clockwise.
    return fine
