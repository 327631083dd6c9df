"""Shell completion: the script ``ocrwatch completion bash`` prints, run by a real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocrwatch.cli import build_parser
from ocrwatch.completion import subcommands

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def complete(script: str, line: str, *, cwd: Path) -> list[str]:
    """What bash offers after typing ``line`` (its last word is the one being completed)."""
    words = line.split(" ")
    program = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_ocrwatch; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, check=True, cwd=cwd, timeout=30,
    )  # fmt: skip
    return sorted(filter(None, result.stdout.splitlines()))


@pytest.fixture(scope="module")
def script() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "completion", "bash"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


def test_subcommands_options_and_choices_complete(script: str, tmp_path: Path) -> None:
    assert complete(script, "ocrwatch ", cwd=tmp_path) == sorted(subcommands(build_parser()))
    assert complete(script, "ocrwatch st", cwd=tmp_path) == ["status"]
    assert complete(script, "ocrwatch status --j", cwd=tmp_path) == ["--json"]
    assert complete(script, "ocrwatch --log-level w", cwd=tmp_path) == ["warning"]
    assert complete(script, "ocrwatch completion ", cwd=tmp_path) == ["bash", "zsh"]
    assert "--fault-retry-after" in complete(script, "ocrwatch serve --fault-r", cwd=tmp_path)


def test_paths_complete_with_file_names(script: str, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("")
    (tmp_path / "scan.png").write_text("")
    assert complete(script, "ocrwatch run -c con", cwd=tmp_path) == ["config.yaml"]
    assert complete(script, "ocrwatch explain sc", cwd=tmp_path) == ["scan.png"]
    assert complete(
        script, "ocrwatch --log-format json explain -c config.yaml s", cwd=tmp_path
    ) == ["scan.png"]


def test_every_option_of_the_parser_is_offered(script: str, tmp_path: Path) -> None:
    for name, parser in subcommands(build_parser()).items():
        offered = complete(script, f"ocrwatch {name} -", cwd=tmp_path)
        expected = {o for action in parser._actions for o in action.option_strings}
        assert set(offered) == expected, name


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_loads_its_script(tmp_path: Path) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "completion", "zsh"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    program = f"autoload -U compinit && compinit -u\n{script}\nprint -r -- ${{_comps[ocrwatch]}}"
    loaded = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                            check=True, cwd=tmp_path, timeout=30)  # fmt: skip
    assert loaded.stderr == ""
    assert "_ocrwatch" in loaded.stdout  # registered through bashcompinit
