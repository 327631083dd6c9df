"""``scripts/dev link``: the ``ocrwatch`` command on PATH when asked, never over another file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_COMMAND = REPO / ".venv" / "bin" / "ocrwatch"

pytestmark = pytest.mark.skipif(
    not VENV_COMMAND.exists(), reason="no .venv in the checkout (scripts/dev makes it)"
)


def dev(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home), PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    env.pop("OCRWATCH_BIN_DIR", None)
    return subprocess.run(
        ["sh", str(REPO / "scripts" / "dev"), *args],
        capture_output=True, text=True, check=False, env=env, cwd=home, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_link_puts_ocrwatch_in_local_bin_and_unlink_takes_it_away(tmp_path: Path) -> None:
    result = dev("link", home=tmp_path)
    assert result.returncode == 0, result.stderr
    link = tmp_path / ".local" / "bin" / "ocrwatch"
    assert link.is_symlink() and link.resolve() == VENV_COMMAND.resolve()
    assert f"{link.parent} is not on your PATH" in result.stderr
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("ocrwatch ")
    assert dev("link", home=tmp_path).returncode == 0  # again: the same link, no error
    assert dev("unlink", home=tmp_path).returncode == 0
    assert not link.exists() and not link.is_symlink()


def test_link_never_replaces_another_ocrwatch(tmp_path: Path) -> None:
    other = tmp_path / ".local" / "bin" / "ocrwatch"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\necho another install\n")
    result = dev("link", home=tmp_path)
    assert result.returncode == 1 and "is not a symlink" in result.stderr
    assert other.read_text() == "#!/bin/sh\necho another install\n"
    assert dev("unlink", home=tmp_path).returncode == 0
    assert other.exists()


def test_link_never_replaces_a_symlink_that_is_not_its_own(tmp_path: Path) -> None:
    other = tmp_path / ".local" / "bin" / "ocrwatch"
    other.parent.mkdir(parents=True)
    other.symlink_to("/usr/bin/true")  # e.g. another checkout's or a package's ocrwatch
    result = dev("link", home=tmp_path)
    assert result.returncode == 1 and "not a link to this checkout" in result.stderr
    assert other.readlink() == Path("/usr/bin/true")
    assert dev("unlink", home=tmp_path).returncode == 0
    assert other.readlink() == Path("/usr/bin/true")
