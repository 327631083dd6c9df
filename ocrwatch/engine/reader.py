"""Recognise one page image with RapidOCR and the preprocessing the options ask for.

The models are the ones inside the ``rapidocr`` wheel, named by path, so RapidOCR never looks
for them on the network (it would otherwise download a model it cannot find). The text-line
direction classifier is off: on upright lines it turns some of them upside down and garbles
them. Fragments are put in reading order by ``layout.group_lines``.

The pipeline for a page (already turned when ``rotate_degrees`` is a right angle): any other
``rotate_degrees`` by resampling; contrast correction; binarization; deskewing by the
estimated skew when it is at least ``_MIN_DESKEW_DEGREES`` (up to 15); recognition; then, when
upsampling is on and the text came out small, recognition again on an enlarged copy. Boxes
are mapped back through every step onto the turned page.

Imports onnxruntime (through RapidOCR): import this module only in the worker process, after
``ORT_DISABLE_TELEMETRY=1`` is set.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rapidocr

from ocrwatch.engine import imaging, orientation, rasters, sources, tiles
from ocrwatch.engine.blocks import read_in_blocks
from ocrwatch.engine.imaging import Affine, Pixels
from ocrwatch.engine.layout import Fragment, LaidOutLine, Quad, group_lines
from ocrwatch.engine.values import Box, EngineOptions, PageResult, TextLine

MAX_SIDE_PX = 2000  # RapidOCR shrinks larger images to this before detection
DETECTION_MIN_SIDE_PX = 736  # the detector enlarges images until their short side is this
_MIN_DESKEW_DEGREES = 0.3
_SMALL_TEXT_PX = 20  # median line height below which upsampling re-reads the page
_MIN_UPSCALE = 1.25
_MAX_UPSCALE = 2.0


def bundled_model_paths() -> dict[str, Path]:
    """The detection, recognition and (unused) classifier models shipped in the wheel."""
    models = Path(rapidocr.__file__).resolve().parent / "models"
    found: dict[str, Path] = {}
    for task in ("det", "rec", "cls"):
        candidates = sorted(models.glob(f"*_{task}_*.onnx"))
        if not candidates:
            raise FileNotFoundError(f"no bundled {task} model in {models}")
        found[task] = candidates[-1]
    return found


@dataclass(frozen=True, slots=True)
class _Pass:
    """One recognition of an image: its fragments, in its pixels."""

    readings: tuple[orientation.Reading, ...]
    median_height_px: float | None


class PageReader:
    """One loaded RapidOCR; not thread-safe (a worker process reads one page at a time)."""

    def __init__(self, *, threads: int) -> None:
        models = bundled_model_paths()
        self._ocr = rapidocr.RapidOCR(
            params={
                "Global.use_cls": False,
                "Global.log_level": "error",  # its warnings repeat per page (e.g. a blank page)
                "Global.max_side_len": MAX_SIDE_PX,
                "Det.model_path": str(models["det"]),
                "Det.limit_type": "min",
                "Det.limit_side_len": DETECTION_MIN_SIDE_PX,
                "Rec.model_path": str(models["rec"]),
                "Cls.model_path": str(models["cls"]),
                "EngineConfig.onnxruntime.intra_op_num_threads": max(1, threads),
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
        # RapidOCR loads each model on first use; load both now, so that "ready" means ready
        # and the first file's time is recognition only. (The flags given to a call stick to
        # the instance: every call passes all three.)
        blank = np.full((48, 96, 3), 255, dtype=np.uint8)
        self._ocr(blank, use_det=True, use_cls=False, use_rec=False)
        self._ocr(blank, use_det=False, use_cls=False, use_rec=True)

    def read_file(
        self, data: bytes, options: EngineOptions, *, max_pixels: int
    ) -> Iterator[PageResult]:
        """Each page of an image or PDF file, recognised, as soon as it is done."""
        for page in sources.read_pages(data, max_pixels=max_pixels):
            if isinstance(page, sources.TiledPdfPage):
                yield self._read_tiled(page.turned(options.quarter_turns), options)
            elif isinstance(page, rasters.TiledImage):
                yield self._read_large_image(page.turned(options.quarter_turns), options)
            else:
                yield self.read(imaging.turn_quarters(page, options.quarter_turns), options)

    def read(self, page: Pixels, options: EngineOptions) -> PageResult:
        """Recognise ``page`` (or its ``options.regions``, in order) into lines of text."""
        height, width = page.shape[:2]
        if not options.regions:
            lines = self._read_area(page, options, area=Box(0, 0, width, height))
        else:
            lines = self._read_regions(
                lambda area: np.ascontiguousarray(
                    page[area.top : area.bottom, area.left : area.right]
                ),
                width,
                height,
                options,
            )
        return PageResult(width_px=width, height_px=height, lines=tuple(lines))

    def _read_regions(
        self, crop: Callable[[Box], Pixels], width: int, height: int, options: EngineOptions
    ) -> list[TextLine]:
        """Each of ``options.regions`` cut from the page (by ``crop``) and read, in order."""
        lines = []
        for region in options.regions:
            area = Box(
                left=min(region.left, width),
                top=min(region.top, height),
                right=min(region.right, width),
                bottom=min(region.bottom, height),
            )
            if area.width and area.height:
                lines.extend(self._read_area(crop(area), options, area=area))
        return lines

    def _read_area(self, image: Pixels, options: EngineOptions, *, area: Box) -> list[TextLine]:
        """The lines of ``image``, the part of the page at ``area``, in page pixels."""
        to_page = np.array([[1.0, 0.0, area.left], [0.0, 1.0, area.top]])
        if options.resampled_degrees:
            image, back = imaging.rotate(image, options.resampled_degrees)
            to_page = imaging.compose(to_page, back)
        image = _preprocessed(image, options)
        prepared, to_upright = self._straightened(image, options)
        found = self._recognise(prepared)
        if (
            options.detect_orientation
            and options.rotate_degrees == 0
            and orientation.is_doubtful(found.readings)
        ):
            turns = orientation.upright_turns(prepared, found.readings, score=self._confidences)
            if turns:
                to_page = imaging.compose(to_page, imaging.quarter_turn_back(image.shape, turns))
                prepared, to_upright = self._straightened(
                    imaging.turn_quarters(image, turns), options
                )
                found = self._recognise(prepared)
        if _is_too_small_to_read(prepared, found):
            source = tiles.ScaledImage(prepared, scale=tiles.reading_scale(found.median_height_px))
            found = self._recognise_tiled(source, scale_back=1 / source.scale)
        elif options.upsample and found.median_height_px is not None:
            factor = min(_MAX_UPSCALE, MAX_SIDE_PX / max(prepared.shape[:2]))
            if found.median_height_px < _SMALL_TEXT_PX and factor >= _MIN_UPSCALE:
                prepared, back = imaging.upscale(prepared, factor)
                to_upright = imaging.compose(to_upright, back)
                found = self._recognise(prepared)
        # Lines are put in order upright (as read), then their boxes are mapped onto the page.
        fragments = [
            Fragment(text=reading.text, quad=_mapped(reading.quad, to_upright))
            for reading in found.readings
        ]
        arrange = read_in_blocks if options.find_blocks else group_lines
        return [
            TextLine(text=line.text, box=_page_box(line, to_page, area=area))
            for line in arrange(fragments)
        ]

    def _read_tiled(self, page: sources.TiledPdfPage, options: EngineOptions) -> PageResult:
        """A page too large to hold whole, read tile by tile as it is (turned as asked)."""
        found = self._recognise_tiled(page, scale_back=1.0, options=options)
        return _laid_out(found, page.width_px, page.height_px, options)

    def _read_large_image(self, page: rasters.TiledImage, options: EngineOptions) -> PageResult:
        """An image too large to hold as BGR, read as it is (turned as asked), or its regions.

        Its overview (the detector's size, made band by band) is read first: when its text is
        readable there, that is the page's reading; else the overview's text height gives the
        scale to read the page's tiles at (its own resolution when it showed no text).
        """
        if options.regions:  # each cut from the decoded page: never the whole page in BGR
            lines = self._read_regions(page.tile, page.width_px, page.height_px, options)
            return PageResult(width_px=page.width_px, height_px=page.height_px, lines=tuple(lines))
        overview, factor = page.overview(MAX_SIDE_PX)
        found = self._recognise(_preprocessed(overview, options))
        median = found.median_height_px
        if median is not None and median >= tiles.READABLE_TEXT_PX:
            found = _Pass(
                readings=tuple(
                    orientation.Reading(
                        text=reading.text, quad=reading.quad / factor, score=reading.score
                    )
                    for reading in found.readings
                ),
                median_height_px=median / factor,
            )
        else:
            text_px = None if median is None else median / factor
            source = page.scaled(tiles.reading_scale(text_px))
            found = self._recognise_tiled(source, scale_back=1 / source.scale, options=options)
        return _laid_out(found, page.width_px, page.height_px, options)

    def _recognise_tiled(
        self,
        source: tiles.TileSource,
        *,
        scale_back: float,
        options: EngineOptions | None = None,
    ) -> _Pass:
        """Each inked tile of ``source`` read; fragments in source pixels times ``scale_back``."""
        width, height = source.width_px, source.height_px
        readings: list[orientation.Reading] = []
        cut: list[bool] = []
        for box in tiles.grid(width, height):
            if not source.may_have_ink(box):
                continue
            pixels = _preprocessed(source.tile(box), options)
            if not tiles.has_ink(pixels):
                continue
            offset = np.array([box.left, box.top], dtype=np.float64)
            for reading in self._recognise(pixels).readings:
                quad = reading.quad + offset
                readings.append(
                    orientation.Reading(text=reading.text, quad=quad, score=reading.score)
                )
                cut.append(tiles.is_cut(quad, box, width_px=width, height_px=height))
        for line in tiles.pieces_of_lines([reading.quad for reading in readings], cut):
            area = Box(line.left, line.top, min(line.right, width), min(line.bottom, height))
            text, score = self._read_line(_preprocessed(source.tile(area), options))
            if text.strip():
                corners = [[area.left, area.top], [area.right, area.top]]
                corners += [[area.right, area.bottom], [area.left, area.bottom]]
                quad = np.array(corners, dtype=np.float64)
                readings.append(orientation.Reading(text=text, quad=quad, score=score))
                cut.append(False)  # whole now: its pieces give way to it
        kept = [
            orientation.Reading(
                text=readings[index].text,
                quad=readings[index].quad * scale_back,
                score=readings[index].score,
            )
            for index in tiles.distinct([reading.quad for reading in readings], cut=cut)
        ]
        if not kept:
            return _Pass(readings=(), median_height_px=None)
        median = statistics.median(_height(reading.quad) for reading in kept)
        return _Pass(readings=tuple(kept), median_height_px=median)

    def _read_line(self, line: Pixels) -> tuple[str, float]:
        """One line image recognised as it is (no detection): its text and confidence."""
        output = self._ocr(line, use_det=False, use_cls=False, use_rec=True)
        texts = getattr(output, "txts", None)
        scores = getattr(output, "scores", None)
        if not texts or scores is None or not len(scores):
            return "", 0.0
        return str(texts[0]), float(scores[0])

    def _straightened(self, image: Pixels, options: EngineOptions) -> tuple[Pixels, Affine]:
        """``image`` deskewed when asked and needed, and the map back to ``image``."""
        if options.skew_correct:
            skew = imaging.estimate_skew_degrees(image)
            if abs(skew) >= _MIN_DESKEW_DEGREES:
                return imaging.rotate(image, -skew)
        return image, imaging.identity()

    def _recognise(self, image: Pixels) -> _Pass:
        longest = int(max(image.shape[:2]))
        if longest > MAX_SIDE_PX:
            # RapidOCR would shrink it too, but only after copying it whole several times.
            small, back = imaging.downscale(image, MAX_SIDE_PX / longest)
            found = self._recognise(small)
            readings = tuple(
                orientation.Reading(
                    text=reading.text,
                    quad=imaging.map_points(reading.quad, back),
                    score=reading.score,
                )
                for reading in found.readings
            )
            median = found.median_height_px
            return _Pass(
                readings=readings, median_height_px=None if median is None else median * back[1, 1]
            )
        output = self._ocr(_padded_for_detection(image), use_det=True, use_cls=False, use_rec=True)
        boxes = getattr(output, "boxes", None)
        texts = getattr(output, "txts", None)
        scores = getattr(output, "scores", None)
        if boxes is None or texts is None or len(texts) == 0:
            return _Pass(readings=(), median_height_px=None)
        readings = tuple(
            orientation.Reading(
                text=str(text),
                quad=np.asarray(box, dtype=np.float64).reshape(4, 2),
                score=float(score),
            )
            for box, text, score in zip(
                boxes, texts, scores if scores is not None else [0.0] * len(texts), strict=True
            )
        )
        heights = [_height(reading.quad) for reading in readings]
        return _Pass(readings=readings, median_height_px=statistics.median(heights))

    def _confidences(self, lines: Sequence[Pixels]) -> list[float]:
        """The recogniser's confidence in each line image (recognition only, no detection)."""
        return [self._read_line(line)[1] for line in lines]


def _laid_out(found: _Pass, width_px: int, height_px: int, options: EngineOptions) -> PageResult:
    """A page read as it is (no deskew or turn found): its fragments in reading order."""
    fragments = [
        Fragment(text=reading.text, quad=_mapped(reading.quad, imaging.identity()))
        for reading in found.readings
    ]
    arrange = read_in_blocks if options.find_blocks else group_lines
    whole = Box(0, 0, width_px, height_px)
    lines = tuple(
        TextLine(text=line.text, box=_page_box(line, imaging.identity(), area=whole))
        for line in arrange(fragments)
    )
    return PageResult(width_px=width_px, height_px=height_px, lines=lines)


def _preprocessed(image: Pixels, options: EngineOptions | None) -> Pixels:
    if options is None:
        return image
    if options.contrast_correct:
        image = imaging.correct_contrast(image)
    if options.binarize:
        image = imaging.binarize(image)
    return image


def _is_too_small_to_read(image: Pixels, found: _Pass) -> bool:
    """Whether the image must be read in tiles: its text too small once shrunk, or unseen."""
    longest = int(max(image.shape[:2]))
    if found.median_height_px is None:
        # Nothing seen: the detector can miss a lone line on a large blank page, so look at
        # it in tiles (blank ones cost an ink count each) before calling it blank.
        return longest > tiles.TILE_PX
    shrunk = found.median_height_px * min(1.0, MAX_SIDE_PX / longest)
    return shrunk < tiles.READABLE_TEXT_PX and longest > MAX_SIDE_PX


def _padded_for_detection(image: Pixels) -> Pixels:
    """``image`` with white added below or to the right, so its short side is not too short.

    The detector scales an image until its short side is ``DETECTION_MIN_SIDE_PX``: a strip
    (a label, a region) 640x120 would be read at 3925x736, six times the text size and as
    slow as a page. Padded to 640x640, it is read at 736x736. The origin does not move, so
    the boxes stay valid.
    """
    height, width = image.shape[:2]
    target = min(max(height, width), DETECTION_MIN_SIDE_PX)
    if min(height, width) >= target:
        return image
    padded = np.full((max(height, target), max(width, target), 3), 255, dtype=np.uint8)
    padded[:height, :width] = image
    return padded


def _height(quad: npt.NDArray[np.float64]) -> float:
    left_side = float(np.linalg.norm(quad[3] - quad[0]))
    right_side = float(np.linalg.norm(quad[2] - quad[1]))
    return (left_side + right_side) / 2


def _mapped(quad: npt.NDArray[np.float64], affine: Affine) -> Quad:
    points = imaging.map_points(quad, affine)
    corners = [(float(x), float(y)) for x, y in points]
    return (corners[0], corners[1], corners[2], corners[3])


def _page_box(line: LaidOutLine, to_page: Affine, *, area: Box) -> Box:
    corners = np.array(
        [
            [line.left, line.top],
            [line.right, line.top],
            [line.right, line.bottom],
            [line.left, line.bottom],
        ]
    )
    points = imaging.map_points(corners, to_page)
    low, high = points.min(axis=0), points.max(axis=0)
    return Box(
        left=_clip(low[0], area.left, area.right),
        top=_clip(low[1], area.top, area.bottom),
        right=_clip(high[0], area.left, area.right),
        bottom=_clip(high[1], area.top, area.bottom),
    )


def _clip(value: float, low: int, high: int) -> int:
    return min(max(round(value), low), high)
