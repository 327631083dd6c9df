"""The container's files agree with the code, everywhere (no buildah needed; see test_container)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ocrwatch.config import load_config
from ocrwatch.config.environment import INBOX_VARIABLES
from ocrwatch.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONTAINER_FILES = [REPO / "Containerfile", REPO / "compose.yaml", *(REPO / "container").iterdir()]


def test_compose_offers_every_override_variable_and_the_two_volumes() -> None:
    service = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["ocrwatch"]
    environment = service["environment"]
    assert set(INBOX_VARIABLES) <= set(environment)
    # Empty by default: the file's own values stay in force until the user sets one.
    assert all(environment[name] == "" for name in INBOX_VARIABLES)
    assert {"PUID", "PGID"} <= set(environment)
    assert {volume.split(":")[1] for volume in service["volumes"]} == {"/config", "/data"}


def test_docs_name_every_override_variable() -> None:
    docs = (REPO / "docs" / "container.md").read_text()
    readme = (REPO / "README.md").read_text()
    for name in INBOX_VARIABLES:
        assert name in docs
        assert name in readme


@pytest.mark.parametrize("path", CONTAINER_FILES, ids=lambda p: p.name)
def test_no_architecture_and_no_registry_host_is_written_into_the_container_files(
    path: Path,
) -> None:
    arch = re.compile(r"amd64|x86_64|aarch64|arm64|armhf|i386", re.IGNORECASE)
    host = re.compile(r"\b[a-z0-9-]+(\.[a-z0-9-]+)+\.(io|com|org|net|cloud)\b", re.IGNORECASE)
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments may say where something was tried
        assert not arch.search(line), line
        assert not host.search(line) or "api.aspose.cloud" in line, line


def test_the_containers_default_config_is_valid_but_for_its_folders(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "container" / "config.yaml").read_text())
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={"HOME": str(tmp_path)})
    # On this machine /data/inbox does not exist; in the image the entry point creates it.
    assert caught.value.problems == ("inboxes[0] (scans).path: /data/inbox does not exist",)


def test_the_entrypoint_passes_the_config_to_every_command_that_takes_one() -> None:
    from ocrwatch.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    with_config = {
        name for name, sub in commands.items() if "--config" in sub._option_string_actions
    }
    entrypoint = (REPO / "container" / "entrypoint").read_text()
    (listed,) = re.findall(r"^\s+([a-z|]+)\)\n\s+command=\$1", entrypoint, re.MULTILINE)
    assert set(listed.split("|")) == with_config
