"""Environment variables that override the main inbox keys, for containers and compose files.

Container users set a few familiar variables instead of editing YAML; the names follow the
watch-folder tools they know (OCRmyPDF's watcher ``OCR_USE_POLLING``, paperless-ngx's
``CONSUMER_RECURSIVE``, ``CONSUMER_IGNORE_PATTERNS``, ``CONSUMER_POLLING_INTERVAL`` and
``CONSUMER_STABILITY_DELAY``) under ocrwatch's own prefix, so nothing meant for another program
in the same environment changes ocrwatch.

Each variable that is set wins over the file for every inbox (over ``defaults`` and each
inbox's own value). A bad value is a problem named by the variable, reported with the file's
problems; an empty variable counts as unset, as compose files write ``VAR:`` for "not set".
Values are checked here as fully as the file's, so a value from the environment is never
reported under a key path the user did not write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocrwatch.model import WatchMode

USE_POLLING = "OCRWATCH_USE_POLLING"  # true: watch polling; false: watch auto
POLLING_INTERVAL = "OCRWATCH_POLLING_INTERVAL"  # polling_interval_seconds
RECURSIVE = "OCRWATCH_RECURSIVE"  # recursive
IGNORE_PATTERNS = "OCRWATCH_IGNORE_PATTERNS"  # exclude: a JSON list, or comma-separated globs
STABILITY_DELAY = "OCRWATCH_STABILITY_DELAY"  # settle_seconds
# The variable -> the inbox key it sets; `ocrwatch check` and the docs list them in this order.
INBOX_VARIABLES: dict[str, str] = {
    USE_POLLING: "watch",
    POLLING_INTERVAL: "polling_interval_seconds",
    RECURSIVE: "recursive",
    IGNORE_PATTERNS: "exclude",
    STABILITY_DELAY: "settle_seconds",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class InboxOverrides:
    """Inbox keys set from the environment, with the variable each came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)  # key -> variable name
    written: Mapping[str, str] = field(default_factory=dict)  # key -> the value as set

    def applied_to(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """One inbox's mapping from the file with these values winning."""
        return {**raw, **self.values}

    def describe(self) -> list[str]:
        """``VARIABLE=value (sets key)`` for each override, for ``ocrwatch check``."""
        return [
            f"{self.variables[key]}={self.written[key]} (sets {key} for every inbox)"
            for key in self.values
        ]


def read_inbox_overrides(environ: Mapping[str, str], problems: list[str]) -> InboxOverrides:
    """The overrides set in ``environ``; each bad value is appended to ``problems``."""
    values: dict[str, Any] = {}
    variables: dict[str, str] = {}
    written: dict[str, str] = {}
    for variable, key in INBOX_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            values[key] = _PARSERS[variable](raw)
        except ValueError as error:
            problems.append(f"{variable} (environment): {error}, got {raw!r}")
            continue
        variables[key] = variable
        written[key] = raw
    return InboxOverrides(values=values, variables=variables, written=written)


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE)}")


def _watch(raw: str) -> str:
    return str(WatchMode.POLLING if _flag(raw) else WatchMode.AUTO)


def _seconds(raw: str, *, allow_zero: bool) -> float:
    wanted = f"expected a number of seconds {'>= 0' if allow_zero else '> 0'}"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(wanted) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(wanted)
    return value


def _patterns(raw: str) -> list[str]:
    """A JSON list (``["*.tmp", "~$*"]``, paperless-ngx's form) or comma-separated globs."""
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("expected a JSON list of glob patterns") from None
        if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
            raise ValueError("expected a JSON list of glob patterns")
        patterns = [p.strip() for p in parsed]
    else:
        patterns = [p.strip() for p in raw.split(",")]
    patterns = [p for p in patterns if p]
    if not patterns:
        raise ValueError("expected at least one glob pattern")
    absolute = [p for p in patterns if p.startswith("/")]
    if absolute:
        raise ValueError(f"{absolute[0]!r} must be relative to the inbox (no leading /)")
    return patterns


def _interval(raw: str) -> float:
    return _seconds(raw, allow_zero=False)


def _delay(raw: str) -> float:
    return _seconds(raw, allow_zero=True)


_PARSERS: dict[str, Callable[[str], object]] = {
    USE_POLLING: _watch,
    POLLING_INTERVAL: _interval,
    RECURSIVE: _flag,
    IGNORE_PATTERNS: _patterns,
    STABILITY_DELAY: _delay,
}
