"""Read one inbox entry, with the defaults merged under it, into an ``InboxConfig``.

A value that came from ``defaults`` is reported under ``defaults.<key>``, not under each inbox
that inherits it. The output template must keep ``{name}`` while sidecars are written into the
inbox: that is how ocrwatch recognises its own outputs and never reads them back in.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ocrwatch.config.keys import (
    _BOOLEAN_SETTINGS,
    _INBOX_KEYS,
    _NAME_PATTERN,
    DEFAULT_INCLUDE,
    DEFAULT_INCOMPLETE_AFTER_SECONDS,
    DEFAULT_OUTPUT_TEMPLATE,
    INBOX_MODES,
    RESULT_TYPE_NAMES,
    TEMPLATE_PLACEHOLDERS,
)
from ocrwatch.config.operability import _read_hooks
from ocrwatch.config.profiles import InboxConfig
from ocrwatch.config.reader import _kind, _Section
from ocrwatch.errors import InvalidSetting
from ocrwatch.model import (
    Disposition,
    DsrConfidence,
    DsrMode,
    DuplicatePolicy,
    Mode,
    RecognitionSettings,
    Region,
    ResultFormat,
    ResultType,
    WatchMode,
    parse_language,
    parse_regions,
)


def _read_inbox(
    top: _Section, index: int, raw: object, defaults: Mapping[str, Any]
) -> tuple[str, InboxConfig] | None:
    """Read one inbox with ``defaults`` merged under it; None if too broken to check further."""
    label = f"inboxes[{index}]"
    if not isinstance(raw, Mapping):
        top.problems.append(f"{label}: expected a mapping with name and path, got {_kind(raw)}")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        label = f"{label} ({name})"
    values = {**defaults, **raw}  # shallow: an inbox's list replaces the default list
    inbox = _Section(
        values,
        top.problems,
        top.base_dir,
        top.environ,
        lambda k: f"{label}.{k}" if k in raw or k not in defaults else f"defaults.{k}",
    )
    for key in raw:  # the defaults' own unknown keys were reported under defaults
        if key not in _INBOX_KEYS:
            top.problems.append(f"{label}.{key}: unknown key; allowed: {', '.join(_INBOX_KEYS)}")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        inbox.report(
            "name", f"expected a name of letters, digits, '.', '_' or '-', got {_kind(name)}"
        )
        name = f"inboxes[{index}]"
    path = inbox.path("path")
    if path is None:
        inbox.report("path", "required: the folder to watch")
        path = top.base_dir  # a stand-in so the remaining keys are still checked
    else:
        problem = _folder_problem(path)
        if problem:
            inbox.report("path", problem)
    mode = inbox.choice("mode", INBOX_MODES, Mode.IMAGE)
    result_formats = _read_result_formats(inbox)
    if mode is Mode.REGIONS and set(result_formats) - {ResultFormat.TEXT, ResultFormat.JSON}:
        inbox.report(
            "result_types",
            "mode regions writes text or json: the service answers one PDF or hOCR per region, "
            "which cannot be joined into one sidecar",
        )
    settings = _read_settings(inbox, mode=mode, result_formats=result_formats)
    on_success = inbox.choice("on_success", list(Disposition), Disposition.KEEP)
    done_dir = inbox.path("done_dir")
    if on_success is Disposition.MOVE and done_dir is None:
        inbox.report("done_dir", "required when on_success is move: where the sources go")
    elif on_success is not Disposition.MOVE and done_dir is not None:
        inbox.report("done_dir", f"only used when on_success is move (it is {on_success})")
    output_dir = inbox.path("output_dir")
    output_template = _read_template(inbox, beside_source=output_dir is None)
    settle = inbox.number("settle_seconds", 5.0, allow_zero=True)
    max_settle = inbox.number("max_settle_seconds", 3600.0)
    # Past max_settle_seconds it has no effect: that bound comes first. Left unset, it is
    # never shorter than settle_seconds, so a config with a long settle stays valid.
    incomplete_after = inbox.number("incomplete_after_seconds", DEFAULT_INCOMPLETE_AFTER_SECONDS)
    if "incomplete_after_seconds" not in inbox.values:
        incomplete_after = max(incomplete_after, settle)
    elif settle > incomplete_after:
        inbox.report(
            "settle_seconds",
            f"{settle:g} is more than incomplete_after_seconds ({incomplete_after:g})",
        )
    if settle > max_settle:
        inbox.report(
            "settle_seconds", f"{settle:g} is more than max_settle_seconds ({max_settle:g})"
        )
    config = InboxConfig(
        name=name,
        path=path,
        mode=mode,
        settings=settings,
        result_formats=result_formats,
        output_dir=output_dir,
        output_template=output_template,
        error_dir=inbox.path("error_dir") or path.parent / f"{path.name}.errors",
        on_success=on_success,
        done_dir=done_dir,
        include=inbox.patterns("include", DEFAULT_INCLUDE),
        exclude=inbox.patterns("exclude", ()),
        recursive=inbox.flag("recursive", False),
        watch=inbox.choice("watch", list(WatchMode), WatchMode.AUTO),
        polling_interval_seconds=inbox.number("polling_interval_seconds", 5.0),
        settle_seconds=settle,
        max_settle_seconds=max_settle,
        incomplete_after_seconds=incomplete_after,
        duplicates=inbox.choice("duplicates", list(DuplicatePolicy), DuplicatePolicy.REUSE),
        hooks=_read_hooks(inbox),
    )
    return (label, config) if "path" in values else None


def _folder_problem(path: Path) -> str | None:
    """Why ``path`` is no usable inbox folder, or None; never raises for what stat refuses."""
    try:
        if path.is_dir():
            return None
        return f"{path} {'is not a directory' if path.exists() else 'does not exist'}"
    except OSError as error:  # EACCES on a parent (a container's PUID), ENAMETOOLONG, ...
        return f"{path} cannot be checked: {error.strerror or error} (as uid {os.getuid()})"


def _read_result_formats(inbox: _Section) -> tuple[ResultFormat, ...]:
    value = inbox.values.get("result_types", ["text"])
    if not isinstance(value, list) or not value:
        inbox.report("result_types", f"expected a list such as [text, pdf], got {_kind(value)}")
        return (ResultFormat.TEXT,)
    wanted: set[ResultFormat] = set()
    for position, name in enumerate(value):
        if isinstance(name, str) and name in RESULT_TYPE_NAMES:
            wanted.add(RESULT_TYPE_NAMES[name])
        else:
            where = f"{inbox.key_path('result_types')}[{position}]"
            inbox.problems.append(str(InvalidSetting(where, name, allowed=list(RESULT_TYPE_NAMES))))
    if ResultFormat.JSON in wanted and len(wanted) > 1:
        inbox.report(
            "result_types",
            "json cannot be combined with other result types: the API has no combined JSON "
            "result type (use a second inbox for json)",
        )
        wanted = {ResultFormat.JSON}
    for result_type in ResultType:  # the API's result order, e.g. TextAndPdf
        if wanted and set(result_type.formats) == wanted:
            return result_type.formats
    return (ResultFormat.TEXT,)


def _read_settings(
    inbox: _Section, *, mode: Mode, result_formats: tuple[ResultFormat, ...]
) -> RecognitionSettings:
    language = inbox.values.get("language", "English")
    try:
        parse_language(language, field_name=inbox.key_path("language"))
    except InvalidSetting as error:
        inbox.problems.append(str(error))
        language = "English"
    regions = _read_regions(inbox)
    if mode is Mode.REGIONS and not inbox.values.get("regions"):
        inbox.report("regions", "mode regions needs at least one region")
    elif mode is not Mode.REGIONS and inbox.values.get("regions"):
        inbox.report("regions", f"only used with mode regions (mode is {mode})")
    result_type = next(t for t in ResultType if t.formats == result_formats)
    return RecognitionSettings(
        language=language,
        rotate=inbox.integer("rotate", 0, minimum=None),
        dsr_mode=inbox.choice("dsr_mode", list(DsrMode), DsrMode.REGIONS),
        dsr_confidence=inbox.choice("dsr_confidence", list(DsrConfidence), DsrConfidence.DEFAULT),
        result_type=result_type,
        regions=regions,
        **{key: inbox.flag(key, key == "make_skew_correct") for key in _BOOLEAN_SETTINGS},
    )


def _read_regions(inbox: _Section) -> tuple[Region, ...]:
    value = inbox.values.get("regions") or []
    if not isinstance(value, list):
        inbox.report("regions", f"expected a list of {{rect, order, name}}, got {_kind(value)}")
        return ()
    regions: list[Region] = []
    for position, item in enumerate(value):
        where = f"{inbox.key_path('regions')}[{position}]"
        if isinstance(item, Mapping):
            for key in set(item) - {"rect", "order", "name"}:
                inbox.problems.append(f"{where}.{key}: unknown key; allowed: rect, order, name")
        try:
            regions.extend(parse_regions([item]))
        except InvalidSetting as error:  # model names the item regions[0]; give it its place
            field_name = error.field_name.removeprefix("regions[0]").lstrip(".")
            full = f"{where}.{field_name}" if field_name else where
            inbox.problems.append(str(InvalidSetting(full, error.value, allowed=error.allowed)))
    return tuple(regions)


def _read_template(inbox: _Section, *, beside_source: bool) -> str:
    template = inbox.text("output_template") or DEFAULT_OUTPUT_TEMPLATE
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as error:
        inbox.report("output_template", f"{template!r} is not a valid template: {error}")
        return DEFAULT_OUTPUT_TEMPLATE
    problems = [f"unknown placeholder {{{f}}}" for f in sorted(fields - set(TEMPLATE_PLACEHOLDERS))]
    if "ext" not in fields:
        problems.append("must contain {ext} so each result type gets its own file")
    if "/" in template or "\\" in template or template in (".", ".."):
        problems.append("must be a plain file name (no '/', no '..')")
    if beside_source and "name" not in fields:
        problems.append(
            "must contain {name} while outputs are written into the inbox (output_dir unset): "
            "that is how ocrwatch recognises its own outputs and never reads them back in"
        )
    for problem in problems:
        inbox.report("output_template", f"{template!r} {problem}")
    return DEFAULT_OUTPUT_TEMPLATE if problems else template
