"""The container image: built from the Containerfile with buildah, smoke-tested with buildah run.

No registry is needed: ``container/build-base`` makes the base image with mmdebstrap from this
machine's apt sources and commits it under the name the Containerfile's ``FROM`` uses. pip in
the build gets this machine's CA bundle as a read-only bind mount and ``PIP_CERT``, as a
build argument: nothing of the machine is written into the repository or the image.

Everything lives in a private buildah storage under the test's temporary folder and is
removed afterwards, so each run builds from scratch (about 1.5 min; the timings print with
``-s``). Skipped, with the reason, where buildah cannot run: not root, no buildah or
mmdebstrap (``scripts/dev test`` installs both as root), no apt source for bookworm.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_engine_accuracy import LABEL_TEXT, character_error_rate, png_bytes, render_label

import ocrwatch

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "debian:bookworm-slim"  # the Containerfile's default BASE_IMAGE
IMAGE = "localhost/ocrwatch:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
USER_ID = 4321  # a PUID/PGID no account in the image has


def why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "building images with buildah --isolation chroot needs root"
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (scripts/dev test installs them as root)"
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    if not any(p.is_file() and "bookworm" in p.read_text(errors="replace") for p in sources):
        return "no apt source for Debian bookworm on this machine to build the base image from"
    return None


pytestmark = pytest.mark.skipif(why_not_runnable() is not None, reason=str(why_not_runnable()))


@dataclass(frozen=True)
class Buildah:
    storage: tuple[str, ...]

    def __call__(self, *args: str, timeout_seconds: float = 600) -> str:
        run = subprocess.run(
            ["buildah", *self.storage, *args],
            capture_output=True, text=True, timeout=timeout_seconds, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert run.returncode == 0, f"buildah {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
        return run.stdout


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    root = tmp_path_factory.mktemp("buildah")
    tool = Buildah(("--root", str(root / "storage"), "--runroot", str(root / "run")))
    try:
        yield tool
    finally:
        for cleanup in (("rm", "--all"), ("rmi", "--all", "--force")):
            subprocess.run(["buildah", *tool.storage, *cleanup], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(buildah: Buildah) -> str:
    started = time.monotonic()
    subprocess.run(
        [str(REPO / "container" / "build-base"), BASE_IMAGE],
        env=dict(os.environ, BUILDAH_STORAGE=" ".join(buildah.storage)),
        check=True, capture_output=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    based = time.monotonic()
    buildah(
        "bud", "--isolation", "chroot", "--pull=never", "--format", "docker", "--tag", IMAGE,
        "--build-arg", "PIP_CERT=/run/build-ca.crt", "--volume", f"{HOST_CA}:/run/build-ca.crt:ro",
        "--file", str(REPO / "Containerfile"), str(REPO),
        timeout_seconds=1200,
    )  # fmt: skip
    built = time.monotonic()
    size = json.loads(buildah("images", "--json", IMAGE))[0]["size"]  # e.g. "630 MB"
    print(f"\nbase image {based - started:.0f} s, ocrwatch image {built - based:.0f} s, {size}")
    return IMAGE


@pytest.fixture
def container(buildah: Buildah, image: str) -> Iterator[str]:
    name = buildah("from", "--pull=never", image).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


def run_in(buildah: Buildah, container: str, *command: str, volumes: dict[Path, str] | None = None,
           env: dict[str, str] | None = None, timeout_seconds: float = 600) -> str:  # fmt: skip
    mounts = [arg for host, inside in (volumes or {}).items() for arg in ("-v", f"{host}:{inside}")]
    variables = [arg for item in (env or {}).items() for arg in ("-e", "=".join(item))]
    return buildah(
        "run", "--isolation", "chroot", *mounts, *variables, container, "--", *command,
        timeout_seconds=timeout_seconds,
    )  # fmt: skip


def test_the_image_declares_volumes_healthcheck_and_entry_point(
    buildah: Buildah, image: str
) -> None:
    info = json.loads(buildah("inspect", "--type", "image", image))
    config = info["Docker"]["config"]
    assert set(config["Volumes"]) == {"/config", "/data"}
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/ocrwatch-healthcheck"]
    assert config["Entrypoint"] == ["/usr/local/bin/ocrwatch-entrypoint"]
    assert info["Docker"]["architecture"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(
        platform.machine(), platform.machine()
    )


def test_version_and_engine_import_in_the_image(buildah: Buildah, container: str) -> None:
    assert run_in(buildah, container, "ocrwatch", "--version").strip() == (
        f"ocrwatch {ocrwatch.__version__}"
    )
    probe = "import cv2, onnxruntime, pypdfium2, rapidocr; print(onnxruntime.get_device())"
    assert run_in(buildah, container, "python", "-c", probe).strip() == "CPU"


def test_one_file_through_ocrwatch_once_as_puid_with_environment_overrides(
    buildah: Buildah, container: str, tmp_path: Path
) -> None:
    # One bind mount only: buildah 1.28's `run` drops a -v onto an image VOLUME when it is
    # given more than one. The config goes under /data through OCRWATCH_CONFIG instead.
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    os.chown(data / "inbox", USER_ID, USER_ID)  # the user's own share, which is never chowned
    (data / "inbox" / "label.png").write_bytes(png_bytes(render_label()))
    (data / "inbox" / "draft.skip.png").write_bytes(png_bytes(render_label()))
    env = {
        "PUID": str(USER_ID), "PGID": str(USER_ID), "OCRWATCH_CONFIG": "/data/config/config.yaml",
        "OCRWATCH_STABILITY_DELAY": "0", "OCRWATCH_IGNORE_PATTERNS": "*.skip.png",
    }  # fmt: skip
    run_in(
        buildah, container, "/usr/local/bin/ocrwatch-entrypoint", "once",
        volumes={data: "/data"}, env=env,
    )  # fmt: skip
    sidecar = data / "inbox" / "label.png.txt"
    assert sidecar.is_file(), sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    assert character_error_rate(sidecar.read_text(encoding="utf-8"), LABEL_TEXT) <= 0.02
    assert not (data / "inbox" / "draft.skip.png.txt").exists()  # the variable's ignore rule
    # The daemon ran as PUID:PGID: what it wrote, and the config made on the first start.
    for written in (sidecar, data / "config" / "config.yaml"):
        assert (written.stat().st_uid, written.stat().st_gid) == (USER_ID, USER_ID), written
    owner = run_in(buildah, container, "stat", "-c", "%u:%g", "/config/state.db").strip()
    assert owner == f"{USER_ID}:{USER_ID}"
    assert (data / "errors").stat().st_uid == USER_ID  # created on the first start
    assert (data / "inbox" / "label.png").stat().st_uid == 0  # the user's file: untouched


def test_the_health_command_passes_once_the_daemon_loop_runs(
    buildah: Buildah, container: str, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)  # pytest makes it 0700; it is /data, which PUID must traverse
    # Inside the container: start the daemon, wait (up to 5 min) for the health command to
    # pass, then stop the daemon with SIGTERM and report its exit status.
    script = (
        "ocrwatch-healthcheck 2>/dev/null && exit 3; "  # nothing may look healthy before
        "/usr/local/bin/ocrwatch-entrypoint run & pid=$!; tries=0; "
        "until ocrwatch-healthcheck 2>/dev/null; do "
        "  tries=$((tries + 1)); [ $tries -gt 1500 ] && exit 4; "
        "  kill -0 $pid 2>/dev/null || exit 5; sleep 0.2; done; "
        "kill -TERM $pid; wait $pid; echo stopped=$?"
    )
    output = run_in(
        buildah, container, "sh", "-c", script,
        volumes={tmp_path: "/data"},
    )  # fmt: skip
    assert output.strip().endswith("stopped=0"), output


def test_a_data_folder_puid_cannot_enter_is_a_config_error_naming_the_uid(
    buildah: Buildah, container: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    data.chmod(0o700)  # root's; PUID may not enter it
    output = run_in(
        buildah, container, "sh", "-c", "/usr/local/bin/ocrwatch-entrypoint check 2>&1; echo rc=$?",
        volumes={data: "/data"}, env={"PUID": str(USER_ID), "PGID": str(USER_ID)},
    )  # fmt: skip
    assert output.strip().endswith("rc=78"), output
    assert f"/data/inbox cannot be checked: Permission denied (as uid {USER_ID})" in output
