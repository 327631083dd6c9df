"""`ocrwatch init`: the example config and the systemd units come out of the installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrwatch.cli import main
from ocrwatch.config import load_config
from ocrwatch.examples import shipped_files

REPO = Path(__file__).resolve().parent.parent
# What a new install needs besides the code; each must reach users of a wheel.
EXPECTED = (
    "config.example.yaml",
    "systemd/ocrwatch.service",
    "systemd/ocrwatch@.service",
    "systemd/ocrwatch.service.d/folders.conf.example",
)


def test_init_writes_the_example_config_and_every_unit_as_they_are_in_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path / "new")]) == 0
    written = {
        str(p.relative_to(tmp_path / "new")) for p in (tmp_path / "new").rglob("*") if p.is_file()
    }
    assert set(EXPECTED) <= written
    for name in written:
        assert (tmp_path / "new" / name).read_bytes() == (REPO / name).read_bytes(), name
    assert "wrote" in capsys.readouterr().out


def test_the_written_example_config_loads_once_its_inbox_exists(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    (tmp_path / "inbox").mkdir()
    config = load_config(tmp_path / "config.example.yaml")
    assert [inbox.path for inbox in config.inboxes] == [(tmp_path / "inbox").resolve()]


def test_init_refuses_to_replace_an_edited_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = tmp_path / "systemd" / "ocrwatch.service"
    edited.parent.mkdir()
    edited.write_text("# my edits\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 1
    assert "ocrwatch.service" in capsys.readouterr().err
    assert edited.read_text(encoding="utf-8") == "# my edits\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ocrwatch.service", "systemd"]


def test_init_force_replaces_the_files(tmp_path: Path) -> None:
    edited = tmp_path / "config.example.yaml"
    edited.write_text("# stale\n", encoding="utf-8")
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert edited.read_bytes() == (REPO / "config.example.yaml").read_bytes()


def test_init_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.example.yaml").symlink_to(victim)
    assert main(["init", "--force", str(tmp_path / "out")]) == 1
    assert victim.read_text(encoding="utf-8") == "keep\n"


def test_init_prints_one_unit_by_file_name_or_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--print", "ocrwatch@.service"]) == 0
    assert capsys.readouterr().out == (REPO / "systemd" / "ocrwatch@.service").read_text()
    assert main(["init", "--print", "systemd/ocrwatch.service"]) == 0
    assert capsys.readouterr().out == (REPO / "systemd" / "ocrwatch.service").read_text()


def test_init_names_the_shipped_files_when_asked_for_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["init", "--print", "ocrwatch.timer"]) == 1
    assert "systemd/ocrwatch.service" in capsys.readouterr().err
    assert main(["init", "--list"]) == 0
    assert capsys.readouterr().out.split() == list(shipped_files())


def test_every_unit_file_in_the_repository_is_shipped() -> None:
    units = {str(p.relative_to(REPO)) for p in (REPO / "systemd").rglob("*") if p.is_file()}
    assert units | {"config.example.yaml"} == set(shipped_files())
