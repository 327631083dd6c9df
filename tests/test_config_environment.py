"""OCRWATCH_* environment variables override the main inbox keys, for containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrwatch.config import describe, load_config
from ocrwatch.config.environment import INBOX_VARIABLES
from ocrwatch.errors import ConfigError
from ocrwatch.model import WatchMode

REPO = Path(__file__).resolve().parent.parent
TWO_INBOXES = """\
defaults:
  settle_seconds: 9
  exclude: ["*.bak"]
inboxes:
  - name: scans
    path: ./scans
    watch: events
    recursive: false
  - name: faxes
    path: ./faxes
    polling_interval_seconds: 30
    settle_seconds: 12
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    for name in ("scans", "faxes"):
        (tmp_path / name).mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(TWO_INBOXES, encoding="utf-8")
    path.chmod(0o600)
    return path


def environ(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), **variables}


def test_without_variables_each_inbox_keeps_its_file_values(
    config_file: Path, tmp_path: Path
) -> None:
    scans, faxes = load_config(config_file, environ=environ(tmp_path)).inboxes
    assert (scans.watch, scans.recursive, scans.settle_seconds) == (WatchMode.EVENTS, False, 9.0)
    assert (faxes.polling_interval_seconds, faxes.settle_seconds) == (30.0, 12.0)
    assert scans.exclude == faxes.exclude == ("*.bak",)


def test_each_variable_wins_over_the_defaults_and_every_inbox(
    config_file: Path, tmp_path: Path
) -> None:
    config = load_config(
        config_file,
        environ=environ(
            tmp_path,
            OCRWATCH_USE_POLLING="true",
            OCRWATCH_POLLING_INTERVAL="2.5",
            OCRWATCH_RECURSIVE="yes",
            OCRWATCH_IGNORE_PATTERNS='["*.tmp", "~$*"]',
            OCRWATCH_STABILITY_DELAY="0",
        ),
    )
    for inbox in config.inboxes:
        assert inbox.watch is WatchMode.POLLING
        assert inbox.polling_interval_seconds == 2.5
        assert inbox.recursive is True
        assert inbox.exclude == ("*.tmp", "~$*")
        assert inbox.settle_seconds == 0.0
    shown = describe(config)["environment"]
    assert len(shown) == len(INBOX_VARIABLES)
    # As the user wrote them, not as Python shows the parsed values.
    assert "OCRWATCH_RECURSIVE=yes (sets recursive for every inbox)" in shown
    assert """OCRWATCH_IGNORE_PATTERNS=["*.tmp", "~$*"] (sets exclude for every inbox)""" in shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", WatchMode.AUTO), ("0", WatchMode.AUTO), ("ON", WatchMode.POLLING)],
)
def test_use_polling_false_means_native_events_with_the_fallback(
    config_file: Path, tmp_path: Path, value: str, expected: WatchMode
) -> None:
    config = load_config(config_file, environ=environ(tmp_path, OCRWATCH_USE_POLLING=value))
    assert {inbox.watch for inbox in config.inboxes} == {expected}


def test_ignore_patterns_may_be_comma_separated(config_file: Path, tmp_path: Path) -> None:
    env = environ(tmp_path, OCRWATCH_IGNORE_PATTERNS=" *.tmp, ~$* ,")
    config = load_config(config_file, environ=env)
    assert {inbox.exclude for inbox in config.inboxes} == {("*.tmp", "~$*")}


def test_an_empty_variable_counts_as_unset(config_file: Path, tmp_path: Path) -> None:
    env = environ(tmp_path, OCRWATCH_RECURSIVE="", OCRWATCH_STABILITY_DELAY="  ")
    config = load_config(config_file, environ=env)
    assert [i.settle_seconds for i in config.inboxes] == [9.0, 12.0]
    assert config.environment == ()


def test_every_bad_value_is_reported_by_its_variable_with_the_files_problems(
    config_file: Path, tmp_path: Path
) -> None:
    config_file.write_text(TWO_INBOXES + "    mode: sideways\n", encoding="utf-8")
    env = environ(
        tmp_path,
        OCRWATCH_USE_POLLING="maybe",
        OCRWATCH_POLLING_INTERVAL="0",
        OCRWATCH_RECURSIVE="2",
        OCRWATCH_IGNORE_PATTERNS='["/etc/*"]',
        OCRWATCH_STABILITY_DELAY="soon",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, environ=env)
    found = "\n".join(caught.value.problems)
    for variable in INBOX_VARIABLES:
        assert f"{variable} (environment): " in found, variable
    assert "'/etc/*' must be relative to the inbox" in found
    assert "inboxes[1] (faxes).mode" in found  # the file's own problem, in the same report
    assert len(caught.value.problems) == len(INBOX_VARIABLES) + 1


def test_a_broken_json_list_is_refused_not_read_as_one_pattern(
    config_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"OCRWATCH_IGNORE_PATTERNS.*JSON list"):
        load_config(config_file, environ=environ(tmp_path, OCRWATCH_IGNORE_PATTERNS='["*.tmp"'))


def explain(config_file: Path, path: Path, **variables: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRWATCH_")}
    env.update(variables, XDG_STATE_HOME=str(config_file.parent / "state"))
    run = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "explain", "--json", "-c", str(config_file), str(path)],
        env=env, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    result: dict[str, object] = json.loads(run.stdout)
    return result


def test_the_daemons_commands_follow_the_variables(config_file: Path) -> None:
    nested = config_file.parent / "scans" / "2026" / "scan.png"
    nested.parent.mkdir()
    nested.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert "non-recursive" in str(explain(config_file, nested)["verdict"])
    assert "ignored" not in str(explain(config_file, nested, OCRWATCH_RECURSIVE="true")["verdict"])
    draft = config_file.parent / "scans" / "draft.tmp.png"
    draft.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert "ignored" not in str(explain(config_file, draft)["verdict"])
    verdict = explain(config_file, draft, OCRWATCH_IGNORE_PATTERNS="*.tmp.png")["verdict"]
    assert verdict == "ignored: exclude pattern '*.tmp.png'"
