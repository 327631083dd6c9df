"""Read one YAML mapping key by key; each bad value becomes a problem naming its key path.

Problems are collected, never raised: an accessor that meets a missing or wrong value reports it
(``inboxes[1] (scans).language: ...``) and returns the default, so the checks that follow still
run and one run of ``ocrwatch check`` shows every problem. Relative paths resolve against the
config file's directory and every path is ``Path.resolve()``d, so later comparisons see through
symlinked aliases.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ocrwatch import policy
from ocrwatch.errors import InvalidSetting

_MISSING: Any = object()
E = TypeVar("E", bound=enum.StrEnum)


def _kind(value: object) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


@dataclass(slots=True)
class _Section:
    """One YAML mapping being read; each bad value becomes a problem naming its key path.

    Accessors return the default when a value is missing or wrong, so the checks that follow
    still run and the user sees every problem in one go.
    """

    values: Mapping[str, Any]
    problems: list[str]
    base_dir: Path
    environ: Mapping[str, str]
    key_path: Callable[[str], str]

    def report(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key_path(key)}: {message}")

    def reject_unknown(self, allowed: Sequence[str], *, prefix: str) -> None:
        for key in self.values:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else str(key)
                self.problems.append(f"{where}: unknown key; allowed: {', '.join(allowed)}")

    def number(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):
            return float(value)
        self.report(key, f"expected a number {'>= 0' if allow_zero else '> 0'}, got {_kind(value)}")
        return default

    def integer(self, key: str, default: int, *, minimum: int | None = 1) -> int:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        if is_integer and (minimum is None or value >= minimum):
            return int(value)
        wanted = "an integer" if minimum is None else f"an integer >= {minimum}"
        self.report(key, f"expected {wanted}, got {_kind(value)}")
        return default

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if isinstance(value, bool):
            return value
        self.report(key, f"expected true or false, got {_kind(value)}")
        return default

    def choice(self, key: str, allowed: Sequence[E], default: E) -> E:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        for member in allowed:
            if isinstance(value, str) and value == member.value:
                return member
        error = InvalidSetting(self.key_path(key), value, allowed=[m.value for m in allowed])
        self.problems.append(str(error))
        return default

    def word(self, key: str, allowed: Sequence[str], default: str) -> str:
        value = self.values.get(key, default)
        if value in allowed:
            return str(value)
        self.problems.append(str(InvalidSetting(self.key_path(key), value, allowed=allowed)))
        return default

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None or (isinstance(value, str) and value):
            return value
        self.report(key, f"expected a non-empty string, got {_kind(value)}")
        return None

    def path(self, key: str) -> Path | None:
        """An absolute, resolved path: ``~`` expands, relative means the config's directory."""
        raw = self.text(key)
        if raw is None:
            return None
        if (raw == "~" or raw.startswith("~/")) and self.environ.get("HOME"):
            raw = self.environ["HOME"] + raw[1:]
        return (self.base_dir / Path(raw).expanduser()).resolve()

    def patterns(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
            self.report(key, f"expected a list of glob patterns, got {_kind(value)}")
            return default
        for pattern in value:
            if pattern.startswith("/"):
                self.report(key, f"{pattern!r} must be relative to the inbox (no leading /)")
            elif (problem := policy.glob_problem(pattern)) is not None:
                self.report(key, f"{pattern!r} is not a usable glob: {problem}")
        return tuple(value)


def _section(
    parent: _Section, key: str, *, allowed: Sequence[str], prefix: str | None = None
) -> _Section:
    """The mapping under ``key`` (empty when absent), with its unknown keys reported."""
    value = parent.values.get(key)
    value = {} if value is None else value
    prefix = prefix or parent.key_path(key)
    if not isinstance(value, Mapping):
        parent.report(key, f"expected a mapping, got {_kind(value)}")
        value = {}
    section = _Section(
        value, parent.problems, parent.base_dir, parent.environ, lambda k: f"{prefix}.{k}"
    )
    section.reject_unknown(allowed, prefix=prefix)
    return section
