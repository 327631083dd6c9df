"""The import rules of the house style, checked by parsing every module's imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ocrwatch"

LEAVES = {"model": {"errors"}, "errors": set()}
# Boundary modules talk to one outside thing each; they never import each other.
BOUNDARIES = {
    "store", "aspose", "outputs", "watcher", "probe", "systemd", "logsetup", "emulator", "engine",
    "exporter", "hooks", "allocator", "examples", "heartbeat", "conversion",
}  # fmt: skip
CORE = {"errors", "model", "policy", "config", "formats"}


def allowed_imports(component: str) -> set[str] | None:
    """Which ocrwatch components ``component`` may import; None means any (the composers)."""
    if component in LEAVES:
        return LEAVES[component]
    if component == "policy":  # pure core; re-exports the settling decisions split out of it
        return {"model", "errors", "settling"}
    if component == "sidecars":  # pure; joins a format's parts with the pure ``joining``
        return {"model", "errors", "joining"}
    if component in {
        "schedule", "settling", "joining", "quota", "workers", "metrics", "progress",
        "ignored", "completion", "formats",
    }:  # fmt: skip
        return {"model", "errors"}  # pure core: no boundary I/O
    if component == "manpage":  # pure: the parser as roff, with completion's parser walk
        return {"model", "errors", "completion"}
    if component == "reload":  # pure: which profile each job uses across reloads
        return {"model", "errors", "config"}
    if component == "config":
        return {"model", "errors", "policy", "formats"}
    if component in BOUNDARIES:
        return CORE | {component}
    composers = {
        "service", "requeue", "dispatch", "finishing", "preflight", "publisher", "account",
    }  # fmt: skip
    if component in composers | {"doctor", "checkup", "explain", "embedded", "status"}:
        return None
    if component in {"cli", "__main__", "__init__"}:
        return None
    raise AssertionError(f"module {component!r} is not classified in test_architecture.py")


def component_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def ocrwatch_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "ocrwatch":
                names = [f"ocrwatch.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names = [f"ocrwatch.{component_of(path)}"]  # relative imports stay in the package
        for name in names:
            parts = name.split(".")
            if parts[0] == "ocrwatch" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_follow_the_layering(path: Path) -> None:
    component = component_of(path)
    allowed = allowed_imports(component)
    imported = ocrwatch_imports(path) - {component, "__init__"}
    if allowed is not None:
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}"
    assert not (imported & {"service", "cli"}) or component in {"cli", "__main__"}


def test_no_grab_bag_modules() -> None:
    names = {p.stem for p in MODULES}
    assert not names & {"utils", "helpers", "common", "misc"}


# What only `serve` and the embedded service need. Each module the daemon imports keeps
# its names in CPython's interned-string table for the life of the process, and that table's
# size decides whether RSS steps up during a long stream (docs/benchmarks.md, "What limits it").
NOT_FOR_THE_DAEMON = (
    "ocrwatch.embedded",
    "ocrwatch.emulator.server",
    "ocrwatch.emulator.recognizer",
    "ocrwatch.emulator.api",
)


def test_the_daemon_command_line_does_not_load_the_server() -> None:
    probe = "import json, sys, ocrwatch.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout))  # fmt: skip
    assert "ocrwatch.service" in loaded  # the probe saw the daemon's imports
    assert not loaded & set(NOT_FOR_THE_DAEMON), sorted(loaded & set(NOT_FOR_THE_DAEMON))


def test_the_emulator_package_loads_its_names_on_first_use() -> None:
    from ocrwatch import emulator
    from ocrwatch.emulator.server import Emulator

    assert set(emulator.__all__) == set(emulator._EXPORTS)
    assert emulator.Emulator is Emulator
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = emulator.Nope
