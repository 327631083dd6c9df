"""Turn a task's results into the bytes of each sidecar: one file per requested format.

Pure: takes decoded ``ResultFile`` values and the profile's formats and regions, returns
bytes per format. RecognizeRegions answers with one result per region, in ``order``; the text
sidecar joins them in that order, with the region names as headings when the profile gives
them, and the JSON sidecar wraps each region's blocks with its name and order. (The config
allows only text and json for regions: a PDF or hOCR per region cannot be joined.)

Which result is which format: the ``type`` strings are undocumented for some outputs (invoice
JSON arrives as ``Text``, region detection as ``Other``), so a result whose content is
decisively PDF or hOCR is that format whatever its type, a result whose type names a requested
format is that format, and any other result is the requested JSON (when it parses as an object
or an array) or the requested text. Several parts of one format (a service that answers one
PDF or hOCR per page) are joined into one document (``joining``). A text
sidecar ends with one newline, as POSIX text files do; each page's text ends with a newline
and a form feed separates it from the next, as pdftotext writes pages
(``joining.join_text_pages``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ocrwatch import joining
from ocrwatch.errors import PermanentError
from ocrwatch.model import Region, ResultFile, ResultFormat


@dataclass(frozen=True, slots=True)
class Sidecar:
    format: ResultFormat
    data: bytes


def compose(
    results: Sequence[ResultFile],
    *,
    formats: Sequence[ResultFormat],
    regions: Sequence[Region] = (),
) -> list[Sidecar]:
    """The sidecars to write; raises PermanentError when a requested format is missing."""
    by_format: dict[ResultFormat, list[bytes]] = {f: [] for f in formats}
    for result in results:
        fmt = _format_of(result, wanted=by_format.keys())
        if fmt is not None:
            by_format[fmt].append(result.data)
    missing = [f.value for f, parts in by_format.items() if not parts]
    if missing:
        got = ", ".join(r.type for r in results) or "nothing"
        raise PermanentError(f"the service returned {got}; expected {', '.join(missing)}")
    ordered = sorted(regions, key=lambda r: r.order)  # stable: equal orders keep config order
    sidecars: list[Sidecar] = []
    for fmt, parts in by_format.items():
        if fmt is ResultFormat.TEXT and ordered and len(parts) > 1:
            sidecars.append(Sidecar(fmt, _join_region_texts(parts, ordered)))
        elif fmt is ResultFormat.JSON and ordered and len(parts) > 1:
            sidecars.append(Sidecar(fmt, _join_region_json(parts, ordered)))
        elif fmt is ResultFormat.TEXT:
            sidecars.append(Sidecar(fmt, _end_line(joining.join_text_pages(parts))))
        else:
            sidecars.append(Sidecar(fmt, joining.join(fmt, parts)))
    return sidecars


def _format_of(result: ResultFile, *, wanted: Collection[ResultFormat]) -> ResultFormat | None:
    """The requested format ``result`` holds, or None if it is none of them."""
    sniffed = joining.sniff(result.data)
    if sniffed is not None:
        return sniffed if sniffed in wanted else None  # content beats a misleading type
    declared = result.format
    if declared is ResultFormat.JSON and declared in wanted:
        if not joining.is_json_document(result.data):
            raise PermanentError("the service returned a JSON result that is not a JSON document")
        return declared
    if declared in wanted and declared is not ResultFormat.TEXT:
        return declared  # a PDF or hOCR the sniffer could not confirm: trust the type
    if ResultFormat.JSON in wanted and joining.is_json_document(result.data):
        return ResultFormat.JSON
    if ResultFormat.TEXT in wanted and declared in (ResultFormat.TEXT, None):
        return ResultFormat.TEXT
    return None


def _end_line(text: bytes) -> bytes:
    """A text file ends with a newline (POSIX): ``cat``, ``wc -l`` and ``diff`` expect one."""
    return text if not text or text.endswith(b"\n") else text + b"\n"


def _join_region_texts(parts: Sequence[bytes], regions: Sequence[Region]) -> bytes:
    chunks: list[str] = []
    for index, data in enumerate(parts):
        text = data.decode("utf-8", errors="replace").rstrip("\n")
        name = regions[index].name if index < len(regions) else None
        chunks.append(f"## {name}\n{text}" if name else text)
    return ("\n\n".join(chunks) + "\n").encode("utf-8")


def _join_region_json(parts: Sequence[bytes], regions: Sequence[Region]) -> bytes:
    items = []
    for index, data in enumerate(parts):
        region = regions[index] if index < len(regions) else None
        try:
            content: object = json.loads(data)
        except ValueError:
            content = data.decode("utf-8", errors="replace")
        items.append(
            {
                "name": region.name if region else None,
                "order": region.order if region else index,
                "result": content,
            }
        )
    return (json.dumps({"regions": items}, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
