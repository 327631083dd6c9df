"""Bad input: each case ends in a clear outcome, and the daemon goes on processing good files.

Cases already proven elsewhere are not repeated (see docs/reliability.md): a text file named
``.png`` (test_service.py::test_files_that_are_not_images_are_refused_without_calling_the_api),
formats and the pixel limit (test_formats.py), undecodable, NFD and 255-byte names, a symlink
out of the inbox and a FIFO (test_service.py::test_odd_names_symlinks_and_fifos), a file
replaced while its task runs (test_service.py), an inbox removed and re-created
(test_service_recovery.py).

Cases that need privileges (mounts, ``chattr``, dropping capabilities) skip with the reason
when the machine does not allow them.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from daemon_harness import drop, emulator_submits, run_until, running_service, write_config
from daemon_process import daemon, wait_for

from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_bomb_png, make_jpeg, make_pdf, make_png
from ocrwatch.model import JobState
from ocrwatch.outputs.moves import TEMP_PATTERN
from ocrwatch.service import Service

MakeEmulator = Callable[..., Emulator]
IS_ROOT = os.geteuid() == 0


def reason(error_dir: Path, name: str) -> dict[str, Any]:
    assert (error_dir / name).exists() or (error_dir / name).is_symlink()
    loaded: dict[str, Any] = json.loads((error_dir / f"{name}.error.json").read_text())
    return loaded


def still_processing(service: Service, inbox: Path, sidecars: Path, tag: str) -> None:
    """A good file dropped now is recognised: the daemon is alive and not stuck."""
    drop(inbox / f"alive-{tag}.png", make_png(f"still alive {tag}"))
    sidecar = sidecars / f"alive-{tag}.png.txt"
    run_until(service, sidecar.exists)
    assert sidecar.read_text() == f"still alive {tag}\n"


def inbox_config(**overrides: Any) -> list[dict[str, Any]]:
    return [{"name": "s", "path": "inbox", "error_dir": "errors", **overrides}]


class SteppingClock:
    """The real clock plus an offset a test moves forward (instead of waiting a minute)."""

    def __init__(self) -> None:
        self.offset_seconds = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_seconds


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


@contextmanager
def tmpfs(folder: Path, *, size: str) -> Iterator[Path]:
    """A small tmpfs mounted on ``folder`` (skip when mounting is not allowed here)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted = _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)])
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        _run(["umount", "-l", str(folder)])


# ------------------------------------------------------------------- content


def test_a_zero_byte_file_waits_for_content_and_then_fails_as_never_settled(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path, emulator.base_url, inboxes=inbox_config(settle_seconds=0.2, max_settle_seconds=2)
    )
    inbox, errors = tmp_path / "inbox", tmp_path / "errors"
    with running_service(config) as (service, store, _):
        (inbox / "empty.png").touch()
        (inbox / "filled-later.png").touch()  # a scanner that creates first, writes later
        run_until(service, lambda: len(store.jobs([JobState.SETTLING])) == 2)
        (inbox / "filled-later.png").write_bytes(make_png("filled later"))
        run_until(service, (errors / "empty.png.error.json").exists)
        run_until(service, (inbox / "filled-later.png.txt").exists)
        still_processing(service, inbox, inbox, "zero")
    failed = reason(errors, "empty.png")
    assert failed["class"] == "never_settled" and "empty" in failed["message"]
    assert (inbox / "filled-later.png.txt").read_text() == "filled later\n"
    assert emulator_submits(emulator) == 2


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cut.png", lambda: make_png("cut png")),
        ("cut.jpg", lambda: make_jpeg("cut jpeg")),
        ("cut.pdf", lambda: make_pdf(["cut pdf"])),
    ],
)
def test_a_truncated_file_never_reaches_the_api(
    tmp_path: Path, emulator: Emulator, name: str, make: Callable[[], bytes]
) -> None:
    config = write_config(
        tmp_path, emulator.base_url, inboxes=inbox_config(settle_seconds=0.2, max_settle_seconds=2)
    )
    data = make()
    cut = data[: len(data) * 2 // 3]
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / name, cut)
        run_until(service, (tmp_path / "errors" / f"{name}.error.json").exists)
        still_processing(service, tmp_path / "inbox", tmp_path / "inbox", "cut")
    failed = reason(tmp_path / "errors", name)
    assert failed["class"] == "never_settled"
    assert "incomplete" in failed["message"]
    # Failed before upload, so never fingerprinted: the reason file still records the file.
    assert failed["size_bytes"] == len(cut)
    assert failed["sha256"] == hashlib.sha256(cut).hexdigest()
    assert emulator_submits(emulator) == 1  # the good file only


def _encrypted_pdf(texts: list[str], *, user: str) -> bytes:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(make_pdf(texts))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(owner="owner secret", user=user))
    return out.getvalue()


def test_a_pdf_that_needs_a_password_is_refused_without_calling_the_api(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "locked.pdf", _encrypted_pdf(["locked"], user="open sesame"))
        run_until(service, (tmp_path / "errors" / "locked.pdf.error.json").exists)
        still_processing(service, tmp_path / "inbox", tmp_path / "inbox", "pdf")
    failed = reason(tmp_path / "errors", "locked.pdf")
    assert failed["class"] == "unreadable"
    assert "needs a password to open" in failed["message"], failed["message"]
    assert emulator_submits(emulator) == 1


def test_a_pdf_with_only_an_owner_password_is_recognised(
    tmp_path: Path, emulator: Emulator
) -> None:
    """It opens in any viewer without a password (its permissions only restrict editing)."""
    config = write_config(tmp_path, emulator.base_url)
    data = _encrypted_pdf(["first page", "second page"], user="")
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "restricted.pdf", data)
        run_until(service, (tmp_path / "inbox" / "restricted.pdf.txt").exists)
    text = (tmp_path / "inbox" / "restricted.pdf.txt").read_text()
    assert text == "first page\n\fsecond page\n"
    assert (tmp_path / "inbox" / "restricted.pdf").read_bytes() == data  # the inbox file untouched


def test_a_decompression_bomb_is_refused_without_calling_the_api(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "bomb.png", make_bomb_png())
        run_until(service, (tmp_path / "errors" / "bomb.png.error.json").exists)
        still_processing(service, tmp_path / "inbox", tmp_path / "inbox", "bomb")
    failed = reason(tmp_path / "errors", "bomb.png")
    assert failed["class"] == "unsupported" and "too large" in failed["message"]
    assert emulator_submits(emulator) == 1


def _png_with_padding(text: str, *, total_bytes: int) -> bytes:
    """A valid PNG of ``total_bytes``: a private ancillary chunk of random bytes before IEND."""
    png = make_png(text, width=320, height=80)
    iend = png.rindex(b"IEND") - 4
    padding = os.urandom(total_bytes - len(png) - 12)
    chunk = b"prVt"  # ancillary, private: readers skip it
    crc = zlib.crc32(chunk + padding) & 0xFFFFFFFF
    body = len(padding).to_bytes(4, "big") + chunk + padding + crc.to_bytes(4, "big")
    return png[:iend] + body + png[iend:]


def test_a_100_mb_file_is_streamed_with_bounded_memory(tmp_path: Path, emulator: Emulator) -> None:
    size = 100 * 1024 * 1024
    config = write_config(tmp_path, emulator.base_url, service={"read_timeout_seconds": 120})
    inbox = tmp_path / "inbox"
    with daemon(config, tmp_path / "daemon.log") as running:
        running.wait_for_event("daemon_ready")
        drop(inbox / "small.png", make_png("warm up"))
        wait_for((inbox / "small.png.txt").exists, what="warm-up sidecar")
        before = running.memory_kib()
        assert before is not None
        drop(inbox / "huge.png", _png_with_padding("one hundred megabytes", total_bytes=size))
        wait_for((inbox / "huge.png.txt").exists, timeout_seconds=240, what="huge sidecar")
        after = running.memory_kib()
        assert after is not None
        assert running.terminate() == 0
    assert (inbox / "huge.png.txt").read_text() == "one hundred megabytes\n"
    peak_growth_mib = (after[1] - before[0]) / 1024
    print(f"\n100 MB file: RSS before {before[0] / 1024:.0f} MiB, peak {after[1] / 1024:.0f} MiB")
    # The Base64 body alone would be 133 MiB; streaming keeps the daemon's growth small.
    assert peak_growth_mib < 40, f"the daemon grew by {peak_growth_mib:.0f} MiB"


# ------------------------------------------------------------------- names and file types


def test_names_with_newlines_quotes_and_shell_characters(
    tmp_path: Path, emulator: Emulator
) -> None:
    names = [
        "two\nlines.png",
        "carriage\rreturn.png",
        "tab\there.png",
        "-leading dash.png",
        'quote\'s "and" $(echo no) `x`; rm.png',
        "emoji \U0001f4c4 e\u0301.png",
    ]
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "inbox"
    with running_service(config) as (service, _, _):
        for n, name in enumerate(names):
            drop(inbox / name, make_png(f"odd name {n}"))
        drop(inbox / "junk\nname.png", b"not an image\n" * 10)
        for name in names:
            run_until(service, (inbox / f"{name}.txt").exists)
        run_until(service, (tmp_path / "errors" / "junk\nname.png.error.json").exists)
        still_processing(service, inbox, inbox, "names")
    for n, name in enumerate(names):
        assert (inbox / f"{name}.txt").read_text() == f"odd name {n}\n"
    failed = reason(tmp_path / "errors", "junk\nname.png")
    assert failed["source_path"].endswith("junk\nname.png")


def test_a_file_deleted_while_settling_is_forgotten(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox_config(settle_seconds=1.0))
    inbox = tmp_path / "inbox"
    with running_service(config) as (service, store, _):
        drop(inbox / "brief.png", make_png("here and gone"))
        run_until(service, lambda: bool(store.jobs([JobState.SETTLING])))
        (inbox / "brief.png").unlink()
        run_until(service, lambda: not store.jobs([JobState.SETTLING]))
        still_processing(service, inbox, inbox, "deleted")
        assert not store.history(inbox / "brief.png")
    assert not (tmp_path / "errors").exists()
    assert emulator_submits(emulator) == 1


# ------------------------------------------------------------------- permissions and space


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
# Runs first in the child: root without the capabilities that bypass file modes, then exec.
_DROP_DAC = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"for cap in ({_CAP_DAC_OVERRIDE}, {_CAP_DAC_READ_SEARCH}):\n"
    f"    if libc.prctl({_PR_CAPBSET_DROP}, cap, 0, 0, 0) != 0:\n"
    "        sys.exit(f'prctl: {os.strerror(ctypes.get_errno())}')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def _can_drop_dac(tmp_path: Path) -> bool:
    probe = tmp_path / "probe-unreadable"
    probe.write_text("x")
    probe.chmod(0)
    check = "open(" + repr(str(probe)) + ").read()"
    result = subprocess.run(
        [sys.executable, "-c", _DROP_DAC, sys.executable, "-c", check],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    probe.unlink()
    return "PermissionError" in result.stderr


def _run_with_an_unreadable_file(tmp_path: Path, emulator: Emulator) -> tuple[dict[str, Any], str]:
    """Run the daemon without the power to read a mode-000 file; its reason and the log."""
    if IS_ROOT:
        if not _can_drop_dac(tmp_path):
            pytest.skip("cannot drop CAP_DAC_OVERRIDE here: root reads every file regardless")
        prefix = [sys.executable, "-c", _DROP_DAC]
    else:
        prefix = []
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "inbox"
    locked = drop(inbox / "locked.png", make_png("nobody may read me"))
    locked.chmod(0)
    with daemon(config, tmp_path / "daemon.log", prefix=prefix) as running:
        running.wait_for_event("daemon_ready")
        wait_for((tmp_path / "errors" / "locked.png.error.json").exists, what="error move")
        drop(inbox / "alive.png", make_png("still alive"))
        wait_for((inbox / "alive.png.txt").exists, what="a good file after the bad one")
        assert running.terminate() == 0
        log = running.log_text()
    assert emulator_submits(emulator) == 1
    return reason(tmp_path / "errors", "locked.png"), log


def test_an_unreadable_file_goes_to_the_error_folder_as_permission_denied(
    tmp_path: Path, emulator: Emulator
) -> None:
    failed, _ = _run_with_an_unreadable_file(tmp_path, emulator)
    assert failed["class"] == "unreadable"
    assert "permission denied" in failed["message"]


def test_an_unreadable_file_is_an_expected_outcome_not_an_internal_error(
    tmp_path: Path, emulator: Emulator
) -> None:
    failed, log = _run_with_an_unreadable_file(tmp_path, emulator)
    assert failed["message"] == "permission denied", failed["message"]
    assert "job_step_crashed" not in log
    # Its size comes from lstat, which needs no read permission; its content cannot be hashed.
    assert failed["size_bytes"] == (tmp_path / "errors" / "locked.png").stat().st_size > 0


@contextmanager
def immutable(folder: Path) -> Iterator[Path]:
    """``chattr +i``: nothing can be created, renamed or deleted in ``folder``, not even by root."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    result = _run(["chattr", "+i", str(folder)])
    if result.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        _run(["chattr", "-i", str(folder)])


def test_a_read_only_output_folder_fails_files_as_output_failed(
    tmp_path: Path, emulator: Emulator
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox_config(output_dir="out"))
    inbox = tmp_path / "inbox"
    with running_service(config) as (service, _, _):
        with immutable(out):
            drop(inbox / "blocked.png", make_png("cannot be written"))
            run_until(service, (tmp_path / "errors" / "blocked.png.error.json").exists)
            assert not list(out.iterdir())
        still_processing(service, inbox, out, "writable-again")
    failed = reason(tmp_path / "errors", "blocked.png")
    assert failed["class"] == "output_failed" and "cannot write sidecar" in failed["message"]


def test_a_full_disk_postpones_the_sidecar_and_never_fails_the_file(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = SteppingClock()
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox_config(output_dir="out"))
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    with tmpfs(out, size="256k"), running_service(config, clock=clock) as (service, store, _):
        filler = out / "filler"
        with filler.open("wb") as file, pytest.raises(OSError) as full:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        assert full.value.errno == errno.ENOSPC
        drop(inbox / "waits.png", make_png("written once there is room"))

        def postponed() -> bool:
            return any(
                "cannot write sidecar" in (job.last_error or "")
                for job in store.jobs([JobState.WRITING])
            )

        run_until(service, postponed)
        assert [p.name for p in out.iterdir()] == ["filler"], "no partial sidecar or temp file"
        filler.unlink()
        clock.offset_seconds += 61  # the postponed write is due again
        run_until(service, (out / "waits.png.txt").exists)
        still_processing(service, inbox, out, "disk")
        assert (out / "waits.png.txt").read_text() == "written once there is room\n"
        assert not [p for p in out.iterdir() if TEMP_PATTERN.fullmatch(p.name)]
    assert not (tmp_path / "errors").exists()


def test_an_inbox_unmounted_and_remounted_while_running(tmp_path: Path, emulator: Emulator) -> None:
    clock = SteppingClock()
    config = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=inbox_config(output_dir="out"),
        rescan_interval_seconds=0.5,
    )
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    with tmpfs(inbox, size="4m"), running_service(config, clock=clock) as (service, _, _):
        drop(inbox / "on-tmpfs.png", make_png("on the mount"))
        run_until(service, (out / "on-tmpfs.png.txt").exists)
        unmounted = _run(["umount", str(inbox)])
        assert unmounted.returncode == 0, unmounted.stderr
        clock.offset_seconds += 11  # the next watch check is due: the folder changed under it
        drop(inbox / "underneath.png", make_png("under the mount point"))
        run_until(service, (out / "underneath.png.txt").exists)
        remounted = _run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(inbox)])
        assert remounted.returncode == 0, remounted.stderr
        clock.offset_seconds += 11
        still_processing(service, inbox, out, "remounted")
    assert (out / "underneath.png.txt").read_text() == "under the mount point\n"
    assert not (tmp_path / "errors").exists()


def test_an_iphone_heic_photo_is_refused_with_a_message_naming_heic(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Issue 12 B.3: an iPhone photo is picked up and refused, never ignored silently."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    config = write_config(tmp_path, emulator.base_url, inboxes=inbox_config())
    with running_service(config) as (service, _, _):
        drop(tmp_path / "inbox" / "IMG_0001.HEIC", heic)
        drop(tmp_path / "inbox" / "IMG_0002.heif", heic)
        run_until(service, (tmp_path / "errors" / "IMG_0002.heif.error.json").exists)
        run_until(service, (tmp_path / "errors" / "IMG_0001.HEIC.error.json").exists)
        still_processing(service, tmp_path / "inbox", tmp_path / "inbox", "heic")
    for name in ("IMG_0001.HEIC", "IMG_0002.heif"):
        failed = reason(tmp_path / "errors", name)
        assert failed["class"] == "unsupported"
        assert failed["message"].startswith("HEIC is not supported")
        assert "heif-convert" in failed["message"]  # says how to convert it
    assert emulator_submits(emulator) == 1  # the good file only
