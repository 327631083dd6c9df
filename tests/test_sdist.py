"""The sdist is complete: it builds a working wheel and passes its own tests, unpacked alone.

Built with the PEP 517 backend from the test extra (``--no-isolation``: no network, the
pinned setuptools). The suite run from the unpacked sdist is the part that reads the files
around the code: the example config, the units, the import rules, ``ocrwatch init``.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import ocrwatch

REPO = Path(__file__).resolve().parent.parent
# Files outside the package that the docs, the tests or a new install need.
SDIST_MUST_HOLD = (
    "LICENSE", "README.md", "config.example.yaml", "constraints.txt", "Containerfile",
    "compose.yaml", "systemd/ocrwatch.service", "systemd/ocrwatch@.service",
    "systemd/ocrwatch.service.d/folders.conf.example", "docs/systemd.md",
    "docs/container.md", "tests/conftest.py", "scripts/dev", ".ci/run",
)  # fmt: skip
WHEEL_MUST_HOLD = (
    "ocrwatch/share/config.example.yaml",
    "ocrwatch/share/systemd/ocrwatch.service",
    "ocrwatch/share/systemd/ocrwatch@.service",
    "ocrwatch/share/systemd/ocrwatch.service.d/folders.conf.example",
    "ocrwatch/py.typed",
)
SUITE_FROM_THE_SDIST = (
    "tests/test_examples.py",
    "tests/test_architecture.py",
    "tests/test_config.py",
)


def build(kind: str, source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(out)],
        cwd=source, check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (built,) = out.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return built


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    sdist = build("sdist", REPO, out)
    with tarfile.open(sdist) as archive:
        archive.extractall(out, filter="data")
    return out / f"ocrwatch-{ocrwatch.__version__}"


def test_the_sdist_holds_the_license_units_config_docs_and_tests(unpacked: Path) -> None:
    missing = [name for name in SDIST_MUST_HOLD if not (unpacked / name).is_file()]
    assert not missing
    # The package's share/ are symlinks in git; the sdist must carry the files themselves.
    shipped = unpacked / "ocrwatch" / "share" / "systemd" / "ocrwatch.service"
    assert not shipped.is_symlink()
    assert shipped.read_bytes() == (REPO / "systemd" / "ocrwatch.service").read_bytes()


def test_a_wheel_built_from_the_sdist_carries_the_units_license_and_version(
    unpacked: Path, tmp_path: Path
) -> None:
    wheel = build("wheel", unpacked, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"ocrwatch-{ocrwatch.__version__}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
    assert set(WHEEL_MUST_HOLD) <= names
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Version"] == ocrwatch.__version__
    assert metadata["License-Expression"] == "MIT"
    assert "Operating System :: POSIX :: Linux" in (metadata.get_all("Classifier") or [])
    assert any("watchdog" in r and "<8" in r for r in metadata.get_all("Requires-Dist") or [])

    # Installed alone (its dependencies come from this venv), `ocrwatch init` writes the units.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(target))
    subprocess.run(
        [sys.executable, "-m", "ocrwatch", "init", str(tmp_path / "etc")],
        cwd=tmp_path, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    unit = tmp_path / "etc" / "systemd" / "ocrwatch.service"
    assert unit.read_bytes() == (REPO / "systemd" / "ocrwatch.service").read_bytes()


def test_the_unpacked_sdist_passes_its_own_tests(unpacked: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(unpacked)  # its own copy of ocrwatch, not this checkout's
    where = subprocess.run(
        [sys.executable, "-c", "import ocrwatch; print(ocrwatch.__file__)"],
        cwd=unpacked, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(unpacked)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *SUITE_FROM_THE_SDIST],
        cwd=unpacked, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
