"""An inbox folder that cannot be looked at is a configuration error with its reason, not a crash.

In a container this is the common case: the share under /data is not traversable by PUID.
(tests/test_container.py shows exactly that in the image, as root; here the same refusal is
shown with what any user can provoke.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrwatch.config import load_config
from ocrwatch.errors import ConfigError


def write_config(tmp_path: Path, inbox: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"inboxes:\n  - name: scans\n    path: {inbox}\n", encoding="utf-8")
    config.chmod(0o600)
    return config


def test_a_path_the_kernel_refuses_to_stat_is_reported_not_raised(tmp_path: Path) -> None:
    config = write_config(tmp_path, "./" + "a" * 300)  # ENAMETOOLONG, for root too
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={"HOME": str(tmp_path)})
    (problem,) = caught.value.problems
    assert problem.startswith("inboxes[0] (scans).path: ")
    assert "cannot be checked: File name too long" in problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root traverses any folder (test_container)")
def test_an_inbox_behind_a_folder_without_access_is_reported(tmp_path: Path) -> None:
    (tmp_path / "locked" / "inbox").mkdir(parents=True)
    config = write_config(tmp_path, "./locked/inbox")
    (tmp_path / "locked").chmod(0)
    try:
        with pytest.raises(ConfigError, match="cannot be checked: Permission denied"):
            load_config(config, environ={"HOME": str(tmp_path)})
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_ocrwatch_check_exits_78_with_one_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, "./" + "b" * 300)
    run = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "check", "-c", str(config)],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert run.returncode == 78
    assert "Traceback" not in run.stderr
    assert "cannot be checked" in run.stderr
