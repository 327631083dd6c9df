"""``ocrwatch doctor`` through the CLI against the real emulator (running, stopped, refusing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import write_config

from ocrwatch import doctor
from ocrwatch.config import load_config
from ocrwatch.embedded import missing_modules
from ocrwatch.emulator import Emulator


def ocrwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = json.loads(result.stdout)
    return found


def test_a_healthy_setup_passes_and_the_probes_leave_nothing_behind(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "on_success": "move",
                "done_dir": "done",
                "recursive": True,
            }
        ],
    )
    for folder in ("errors", "done", "inbox/sub/deeper"):
        (tmp_path / folder).mkdir(parents=True)
    before = tree(tmp_path)

    result = ocrwatch("doctor", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert tree(tmp_path) == before, "the permission probes left something behind"
    out = result.stdout
    for role, folder in (("inbox", "inbox"), ("error folder", "errors"), ("done folder", "done")):
        assert f"{role} {tmp_path / folder}: create, rename and delete work" in out
    assert "moves to the error folder are atomic renames" in out
    assert "3 folder(s) to watch; max_user_watches is" in out
    assert f"ok       service: {emulator.base_url} answers; token obtained" in out
    assert "skipped  service: clock skew not checked" in out
    assert out.rstrip().endswith("0 problem(s), 0 warning(s)")


def test_a_stopped_service_is_unreachable_with_its_fix(tmp_path: Path) -> None:
    emulator = Emulator()
    emulator.start()
    url = emulator.base_url
    emulator.stop()
    config = write_config(tmp_path, url)

    result = ocrwatch("doctor", "-c", str(config))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    problem = next(i for i, line in enumerate(lines) if line.startswith("PROBLEM  service:"))
    assert f"{url} is not reachable" in lines[problem]
    assert lines[problem + 1].strip().startswith("fix: check service.url")
    assert result.stdout.rstrip().endswith("1 problem(s), 0 warning(s)")


def test_refused_credentials_are_a_problem_and_the_secret_never_shows(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "client_secret").write_text("not-the-right-secret")

    result = ocrwatch("doctor", "-c", str(config), "--json")

    assert result.returncode == 1
    service = [f for f in findings(result) if f["subject"] == "service"]
    refused = [f for f in service if f["level"] == "problem"]
    assert len(refused) == 1 and refused[0]["text"].startswith("no token:")
    assert "Aspose Cloud dashboard" in str(refused[0]["fix"])
    assert any(f["level"] == "ok" and "answers" in f["text"] for f in service)
    assert "not-the-right-secret" not in result.stdout + result.stderr


def test_low_disk_space_and_a_folder_that_cannot_exist_are_problems(
    tmp_path: Path, emulator: Emulator
) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "scans", "path": "inbox", "error_dir": "afile/errors"}],
    )

    result = ocrwatch("doctor", "-c", str(config), "--offline", "--min-free-mb", "1000000000")

    assert result.returncode == 1
    out = result.stdout
    assert f"PROBLEM  inbox scans: error folder {tmp_path}/afile/errors cannot be created" in out
    assert "below the threshold of" in out and "fix: free some space there" in out
    assert "service:" not in out  # --offline


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any folder")
def test_an_unwritable_error_folder_is_a_problem_with_its_fix(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    errors = tmp_path / "errors"
    errors.mkdir()
    errors.chmod(0o500)
    try:
        result = ocrwatch("doctor", "-c", str(config), "--offline")
    finally:
        errors.chmod(0o700)
    assert result.returncode == 1
    assert "PROBLEM  inbox scans: error folder: cannot create a file in" in result.stdout
    assert "fix: give" in result.stdout


def test_an_error_folder_on_another_file_system_is_a_warning(
    tmp_path: Path, emulator: Emulator
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    errors = shm / f"ocrwatch-doctor-{os.getpid()}"
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "scans", "path": "inbox", "error_dir": str(errors)}],
    )
    result = ocrwatch("doctor", "-c", str(config), "--offline")
    assert result.returncode == 0, result.stdout
    assert "warning  inbox scans: the error folder is on another file system" in result.stdout
    assert not errors.exists(), "a missing folder is checked, never created"


def test_inotify_limits_are_compared_with_the_folders_to_watch(
    tmp_path: Path, emulator: Emulator
) -> None:
    config_path = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[{"name": "scans", "path": "inbox", "recursive": True, "watch": "events"}],
    )
    for sub in ("a", "b", "b/c"):
        (tmp_path / "inbox" / sub).mkdir(parents=True)
    limits = tmp_path / "inotify"
    limits.mkdir()
    (limits / "max_user_watches").write_text("3\n")
    (limits / "max_user_instances").write_text("0\n")

    found = doctor.examine(
        load_config(config_path, environ={}), check_service=False, inotify=limits
    )

    inotify = [f for f in found if f.subject == "inotify"]
    assert [f.level for f in inotify] == [doctor.Level.PROBLEM, doctor.Level.PROBLEM]
    assert inotify[0].text == "4 folders to watch but max_user_watches is 3"
    assert "sysctl fs.inotify.max_user_watches=" in str(inotify[0].fix)
    assert "sysctl fs.inotify.max_user_instances=" in str(inotify[1].fix)


@pytest.mark.skipif(bool(missing_modules()), reason="the local engine is not installed")
def test_the_embedded_engine_is_checked_instead_of_the_network(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    config = write_config(
        tmp_path,
        "embedded",
        credentials=False,
        inboxes=[
            {"name": "scans", "path": "inbox", "error_dir": "errors"},
            {"name": "arabic", "path": "other", "error_dir": "errors2", "language": "Arabic"},
        ],
    )

    result = ocrwatch("doctor", "-c", str(config), "--json")

    service = [f for f in findings(result) if f["subject"] == "service"]
    assert [f["text"] for f in service] == [
        "embedded local engine installed: no credentials or network needed"
    ]
    (unreadable,) = [f for f in findings(result) if f["level"] == "problem"]
    assert unreadable["subject"] == "inbox arabic"
    assert unreadable["text"] == "the local engine cannot read Arabic"
    assert "English" in str(unreadable["fix"])
    assert result.returncode == 1
