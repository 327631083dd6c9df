"""``docs/ocrwatch.1`` is the manual generated from the parser, and groff reads it cleanly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ocrwatch.cli import build_parser
from ocrwatch.completion import subcommands
from ocrwatch.config.environment import INBOX_VARIABLES
from ocrwatch.heartbeat import ENV_HEARTBEAT_FILE
from ocrwatch.manpage import render

PAGE = Path(__file__).resolve().parent.parent / "docs" / "ocrwatch.1"
REGENERATE = (
    "python -c 'from ocrwatch.cli import build_parser; from ocrwatch.manpage import render; "
    'print(render(build_parser()), end="")\' > docs/ocrwatch.1'
)


def test_the_shipped_page_matches_the_parser() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(build_parser()), (
        f"docs/ocrwatch.1 is out of date; regenerate it: {REGENERATE}"
    )


def test_the_page_names_every_command_and_option() -> None:
    page = render(build_parser())
    for name, parser in subcommands(build_parser()).items():
        assert f".SS {name}" in page
        for action in parser._actions:
            for option in set(action.option_strings) - {"-h", "--help"}:
                assert option.replace("-", "\\-") in page, (name, option)


def test_the_page_names_every_environment_variable_ocrwatch_reads() -> None:
    environment = render(build_parser()).split(".SH ENVIRONMENT", 1)[1].split(".SH ", 1)[0]
    for variable in [*INBOX_VARIABLES, ENV_HEARTBEAT_FILE, "XDG_STATE_HOME"]:
        assert variable in environment, variable


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_formats_the_page_without_a_warning() -> None:
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(PAGE)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    shown = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P", "-cbou", str(PAGE)],  # plain text: no overstrike
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "EXIT STATUS" in shown and "OCRWATCH_CONFIG" in shown
