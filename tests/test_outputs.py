"""Outputs on real files: atomic writes, no-replace moves, error moves, crashes and full disks.

Crashes are real: a child process is SIGKILLed in the middle of a write or a move. Read-only
and full filesystems are real mounts (tmpfs) or immutable directories; the tests run as
root, which ignores permission bits, so those tests skip when no such technique is available.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch.outputs import (
    NAME_MAX_BYTES,
    CrossDeviceMoveError,
    delete_file,
    display_path,
    ensure_directory,
    free_name,
    move_file,
    move_to_error,
    probe_writable,
    reason_file_path,
    remove_stale_temp_files,
    write_atomic,
    write_json_atomic,
)

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
UNDECODABLE = os.fsdecode(b"scan-\xff\xfe-caf\xe9.pdf")
NFD = unicodedata.normalize("NFD", "Café-Übersicht.pdf")


def name_bytes(path: Path) -> int:
    return len(os.fsencode(path.name))


def names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def temp_files(directory: Path) -> list[str]:
    return [n for n in names(directory) if n.endswith(".tmp") and ".ocrwatch-" in n]


def run_quietly(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def mount_tmpfs(directory: Path, options: str) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    return run_quietly("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory))


def unmount(directory: Path) -> None:
    if not run_quietly("umount", str(directory)):
        run_quietly("umount", "-l", str(directory))


@contextlib.contextmanager
def mounted_tmpfs(directory: Path, options: str) -> Iterator[Path]:
    if not mount_tmpfs(directory, options):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield directory
    finally:
        unmount(directory)


@contextlib.contextmanager
def unwritable_directory(directory: Path) -> Iterator[Path]:
    """A directory no entry can be added to or removed from, whoever we are."""
    directory.mkdir(parents=True, exist_ok=True)
    if IS_ROOT:  # root ignores mode bits, but not the immutable attribute
        if not run_quietly("chattr", "+i", str(directory)):
            pytest.skip("root ignores permissions and chattr +i is not available here")
        try:
            yield directory
        finally:
            run_quietly("chattr", "-i", str(directory))
    else:
        directory.chmod(0o500)
        try:
            yield directory
        finally:
            directory.chmod(0o700)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem other than tmp_path's."""
    mountpoint = tmp_path / "otherfs"
    if mount_tmpfs(mountpoint, "size=256m"):
        try:
            yield mountpoint
        finally:
            unmount(mountpoint)
        return
    shm = Path("/dev/shm")
    if shm.is_dir() and shm.stat().st_dev != tmp_path.stat().st_dev:
        directory = Path(tempfile.mkdtemp(dir=shm))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    pytest.skip("no second filesystem available for a cross-device move")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def child(script: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", script], env=env)


@contextlib.contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill and reap ``process`` if the test fails while it still runs."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def kill_when(process: subprocess.Popen[bytes], directory: Path, *, timeout: float) -> bool:
    """SIGKILL ``process`` as soon as one of our temp files exists in ``directory``.

    Returns whether the kill interrupted it (False: it had finished on its own).
    """
    deadline = time.monotonic() + timeout
    with reaped(process):
        while time.monotonic() < deadline and process.poll() is None:
            if directory.is_dir() and temp_files(directory):
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=timeout)
    return process.returncode == -signal.SIGKILL


# --- write_atomic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("umask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o007, 0o660), (0o077, 0o600)]
)
def test_sidecars_and_reason_files_follow_the_umask(
    tmp_path: Path, umask: int, expected: int
) -> None:
    # The unit's UMask= (docs/systemd.md) decides who may read what ocrwatch writes.
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "a.txt", b"hello\n")
        write_json_atomic(tmp_path / "a.error.json", {"error": "x"})
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").read_bytes() == b"hello\n"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "a.error.json").stat().st_mode) == expected
    assert temp_files(tmp_path) == []


def test_write_atomic_applies_an_explicit_mode_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "b.txt", b"secret\n", mode=0o600)
        write_atomic(tmp_path / "c.txt", b"shared\n", mode=0o664)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c.txt").stat().st_mode) == 0o664
    assert temp_files(tmp_path) == []


def test_write_atomic_creates_missing_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out" / "2024" / "scan.txt"
    write_atomic(target, b"first")
    write_atomic(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert temp_files(target.parent) == []


def test_write_atomic_replaces_a_symlink_never_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"must stay")
    link = tmp_path / "scan.txt"
    link.symlink_to(victim)
    write_atomic(link, b"sidecar")
    assert not link.is_symlink()
    assert link.read_bytes() == b"sidecar"
    assert victim.read_bytes() == b"must stay"


def test_write_atomic_onto_a_directory_raises_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "scan.txt").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "scan.txt", b"x")
    assert temp_files(tmp_path) == []


def test_ensure_directory_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        ensure_directory(tmp_path / "out" / "sub")
    with pytest.raises(NotADirectoryError):
        write_atomic(tmp_path / "out" / "scan.txt", b"x")


@pytest.mark.skipif(not IS_ROOT, reason="choosing a foreign group for a directory needs root")
def test_setgid_directory_gives_its_group_to_new_files(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 4242)
    shared.chmod(0o2775)
    write_atomic(shared / "sub" / "scan.txt", b"x")
    assert (shared / "sub" / "scan.txt").stat().st_gid == 4242
    assert (shared / "sub").stat().st_gid == 4242


def test_a_reader_never_sees_a_partial_sidecar(tmp_path: Path) -> None:
    target = tmp_path / "big.txt"
    size = 50 * 1024 * 1024
    first, second = b"A" * size, b"B" * size
    write_atomic(target, first)
    process = child(
        "from pathlib import Path\n"
        "from ocrwatch.outputs import write_atomic\n"
        f"target = Path({str(target)!r})\n"
        "for letter in b'BAB':\n"
        f"    write_atomic(target, bytes([letter]) * {size})\n"
    )
    reads = 0
    deadline = time.monotonic() + 120
    with reaped(process):
        while process.poll() is None and time.monotonic() < deadline:
            data = target.read_bytes()  # replaced, never absent: a missing file fails here
            assert data in (first, second), f"partial read of {len(data)} bytes"
            reads += 1
        assert process.wait(timeout=60) == 0
    assert target.read_bytes() == second
    assert reads > 0
    assert temp_files(tmp_path) == []


def test_sigkill_during_a_write_leaves_the_old_file_and_a_removable_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "scan.txt"
    write_atomic(target, b"old complete content\n")
    script = (
        "from pathlib import Path\n"
        "from ocrwatch.outputs import write_atomic\n"
        f"write_atomic(Path({str(target)!r}), b'n' * (256 << 20))\n"
    )
    for _ in range(3):  # the child may win the race; then try again
        if kill_when(child(script), target.parent, timeout=60):
            break
        write_atomic(target, b"old complete content\n")
    else:
        pytest.fail("the child finished every write before it could be killed")
    assert target.read_bytes() == b"old complete content\n"
    leftovers = temp_files(target.parent)
    assert len(leftovers) == 1
    assert remove_stale_temp_files(target.parent, older_than_seconds=60, now=time.time()) == []
    removed = remove_stale_temp_files(target.parent, older_than_seconds=0, now=time.time() + 1)
    assert [p.name for p in removed] == leftovers
    assert names(target.parent) == ["scan.txt"]


def test_remove_stale_temp_files_leaves_everything_else(tmp_path: Path) -> None:
    keep = [".hidden", "scan.tmp", ".scan.ocrwatch-.tmp", "a.ocrwatch-12ab.tmp", "x.txt"]
    for name in keep:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".dir.ocrwatch-0a1b.tmp").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".deep.ocrwatch-0a1b.tmp").write_bytes(b"")
    stale = tmp_path / f".{UNDECODABLE}.ocrwatch-00ff.tmp"
    stale.write_bytes(b"partial")
    removed = remove_stale_temp_files(tmp_path, older_than_seconds=10, now=time.time() + 20)
    assert removed == [stale]
    assert names(tmp_path) == sorted([*keep, ".dir.ocrwatch-0a1b.tmp", "sub"])
    assert remove_stale_temp_files(tmp_path / "missing", older_than_seconds=0, now=0) == []


# --- JSON ------------------------------------------------------------------------------


def test_write_json_atomic_is_sorted_indented_utf8_with_newline(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json_atomic(target, {"zeta": 1, "alpha": "Grüße", "path": tmp_path / NFD})
    text = target.read_bytes().decode("utf-8")
    assert text.endswith("}\n")
    assert text.index('"alpha"') < text.index('"path"') < text.index('"zeta"')
    assert '  "alpha": "Grüße"' in text
    assert json.loads(text)["path"] == str(tmp_path / NFD)


def test_write_json_atomic_keeps_undecodable_paths_recoverable(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    path = tmp_path / UNDECODABLE
    write_json_atomic(target, {"source": path, "names": [UNDECODABLE], "message": "plain"})
    value = json.loads(target.read_text(encoding="utf-8"))
    assert value["source"] == display_path(path)
    assert "\\xff\\xfe" in value["source"]
    assert base64.b64decode(value["source_bytes"]) == os.fsencode(path)
    assert value["names"] == ["scan-\\xff\\xfe-caf\\xe9.pdf"]
    assert value["message"] == "plain"
    assert "message_bytes" not in value


# --- free_name -------------------------------------------------------------------------


def test_free_name_adds_a_counter_before_the_last_suffix(tmp_path: Path) -> None:
    assert free_name(tmp_path / "scan.pdf") == tmp_path / "scan.pdf"
    (tmp_path / "scan.pdf").write_bytes(b"")
    assert free_name(tmp_path / "scan.pdf") == tmp_path / "scan (1).pdf"
    (tmp_path / "scan (1).pdf").symlink_to(tmp_path / "nowhere")  # dangling still counts
    assert free_name(tmp_path / "scan.pdf") == tmp_path / "scan (2).pdf"
    for name, expected in [
        ("archive.tar.gz", "archive.tar (1).gz"),
        (".profile", ".profile (1)"),
        ("README", "README (1)"),
        ("trailing.", "trailing. (1)"),
    ]:
        (tmp_path / name).write_bytes(b"")
        assert free_name(tmp_path / name) == tmp_path / expected


@pytest.mark.parametrize("unit", ["a", "é", "€", "\U0001f600"])
def test_free_name_stays_within_255_bytes_on_character_boundaries(
    tmp_path: Path, unit: str
) -> None:
    stem = unit * ((NAME_MAX_BYTES - 4) // len(unit.encode()))
    target = tmp_path / f"{stem}.pdf"
    target.write_bytes(b"")
    taken = [target]
    for number in range(1, 12):
        candidate = free_name(target)
        assert name_bytes(candidate) <= NAME_MAX_BYTES
        assert candidate.name.endswith(f" ({number}).pdf")
        os.fsencode(candidate.name).decode("utf-8")  # no character was cut in half
        candidate.write_bytes(b"")
        taken.append(candidate)
    assert len(set(taken)) == 12


# --- move_file -------------------------------------------------------------------------


def test_move_file_never_overwrites(tmp_path: Path) -> None:
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    inbox.mkdir()
    for content in (b"first", b"second", b"third"):
        (inbox / "scan.pdf").write_bytes(content)
        move_file(inbox / "scan.pdf", done / "scan.pdf")
    assert (done / "scan.pdf").read_bytes() == b"first"
    assert (done / "scan (1).pdf").read_bytes() == b"second"
    assert (done / "scan (2).pdf").read_bytes() == b"third"
    assert names(inbox) == []


def test_move_file_finishes_a_half_done_link_move(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"content")
    (tmp_path / "done").mkdir()
    os.link(source, tmp_path / "done" / "scan.pdf")  # what a crash after link() leaves
    assert move_file(source, tmp_path / "done" / "scan.pdf") == tmp_path / "done" / "scan.pdf"
    assert not source.exists()
    assert names(tmp_path / "done") == ["scan.pdf"]
    assert (tmp_path / "done" / "scan.pdf").stat().st_nlink == 1


def test_symlinks_and_fifos_move_as_themselves(tmp_path: Path) -> None:
    (tmp_path / "real.pdf").write_bytes(b"real")
    (tmp_path / "link.pdf").symlink_to(tmp_path / "real.pdf")
    (tmp_path / "dangling.pdf").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe.pdf")  # opening it for reading would hang the test
    moved = {n: move_file(tmp_path / n, tmp_path / "err" / n) for n in names(tmp_path)}
    assert moved["link.pdf"].readlink() == tmp_path / "real.pdf"
    assert moved["dangling.pdf"].readlink() == tmp_path / "nowhere"
    assert stat.S_ISFIFO(os.lstat(moved["pipe.pdf"]).st_mode)
    assert moved["real.pdf"].read_bytes() == b"real"
    assert names(tmp_path) == ["err"]


def test_move_file_refuses_directories_and_reports_missing_sources(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        move_file(tmp_path / "folder", tmp_path / "done" / "folder")
    with pytest.raises(FileNotFoundError):
        move_file(tmp_path / "gone.pdf", tmp_path / "done" / "gone.pdf")


def test_undecodable_and_nfd_names_survive_byte_for_byte(tmp_path: Path) -> None:
    for name in (UNDECODABLE, NFD):
        write_atomic(tmp_path / "out" / name, b"text")
        (tmp_path / name).write_bytes(b"scan")
        moved = move_file(tmp_path / name, tmp_path / "done" / name)
        assert os.fsencode(moved.name) == os.fsencode(name)
        failed = move_to_error(moved, tmp_path / "err" / name, reason={"message": "x"})
        assert os.fsencode(failed.name) == os.fsencode(name)
    assert {os.fsencode(n) for n in names(tmp_path / "out")} == {
        os.fsencode(UNDECODABLE),
        os.fsencode(NFD),
    }
    reason = json.loads(reason_file_path(tmp_path / "err" / UNDECODABLE).read_text("utf-8"))
    recorded = base64.b64decode(reason["source_path_bytes"])
    assert recorded == os.fsencode(tmp_path / "done" / UNDECODABLE)


# --- across filesystems ----------------------------------------------------------------


def test_cross_filesystem_move_copies_then_removes_the_source(
    tmp_path: Path, other_filesystem: Path
) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"x" * 3_000_000)
    source.chmod(0o640)
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    (other_filesystem / "scan.pdf").write_bytes(b"already here")
    final = move_file(source, other_filesystem / "scan.pdf")
    assert final == other_filesystem / "scan (1).pdf"
    assert final.read_bytes() == b"x" * 3_000_000
    assert stat.S_IMODE(final.stat().st_mode) == 0o640
    assert final.stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert (other_filesystem / "scan.pdf").read_bytes() == b"already here"
    assert not source.exists()
    assert temp_files(other_filesystem) == []


def test_cross_filesystem_move_of_a_symlink_raises_and_keeps_it(
    tmp_path: Path, other_filesystem: Path
) -> None:
    (tmp_path / "link.pdf").symlink_to(tmp_path / "nowhere")
    with pytest.raises(CrossDeviceMoveError) as caught:
        move_file(tmp_path / "link.pdf", other_filesystem / "link.pdf")
    assert caught.value.errno == errno.EXDEV
    assert (tmp_path / "link.pdf").is_symlink()
    assert names(other_filesystem) == []


def test_sigkill_during_a_cross_filesystem_move_keeps_the_source(
    tmp_path: Path, other_filesystem: Path
) -> None:
    source = tmp_path / "big.pdf"
    content = os.urandom(1 << 20) * 160
    source.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    del content
    script = (
        "from pathlib import Path\n"
        "from ocrwatch.outputs import move_file\n"
        f"move_file(Path({str(source)!r}), Path({str(other_filesystem / 'big.pdf')!r}))\n"
    )
    killed = kill_when(child(script), other_filesystem, timeout=60)
    final = other_filesystem / "big.pdf"
    places = [p for p in (source, final) if p.is_file() and sha256_of(p) == digest]
    assert places, "the file is in neither place"
    if killed:
        remove_stale_temp_files(other_filesystem, older_than_seconds=0, now=time.time() + 1)
        assert temp_files(other_filesystem) == []
    if source.exists():
        assert move_file(source, final) in (final, other_filesystem / "big (1).pdf")
    assert sha256_of(final) == digest
    assert not source.exists()


# --- move_to_error ---------------------------------------------------------------------


def test_move_to_error_puts_the_file_beside_its_reason(tmp_path: Path) -> None:
    source = tmp_path / "inbox" / "scan.pdf"
    source.parent.mkdir()
    source.write_bytes(b"%PDF broken")
    reason = {"class": "rejected", "http_status": 415, "message": "unsupported", "task_id": None}
    final = move_to_error(source, tmp_path / "error" / "scan.pdf", reason=reason)
    assert final == tmp_path / "error" / "scan.pdf"
    assert final.read_bytes() == b"%PDF broken"
    assert not source.exists()
    written = json.loads((tmp_path / "error" / "scan.pdf.error.json").read_text("utf-8"))
    assert written == {**reason, "source_path": str(source), "moved_to": str(final)}


def test_move_to_error_never_overwrites_a_file_or_a_reason(tmp_path: Path) -> None:
    errors = tmp_path / "error"
    for number in range(3):
        (tmp_path / "scan.pdf").write_bytes(f"copy {number}".encode())
        move_to_error(tmp_path / "scan.pdf", errors / "scan.pdf", reason={"n": number})
    for number, name in enumerate(["scan.pdf", "scan (1).pdf", "scan (2).pdf"]):
        assert (errors / name).read_bytes() == f"copy {number}".encode()
        assert json.loads(reason_file_path(errors / name).read_text("utf-8"))["n"] == number


def test_move_to_error_repeated_after_a_crash_reuses_the_name(tmp_path: Path) -> None:
    inbox, errors = tmp_path / "inbox", tmp_path / "error"
    source = inbox / "scan.pdf"
    inbox.mkdir()
    source.write_bytes(b"scan")
    # The move out of a frozen inbox fails after the reason file was written: the same
    # state a crash between the two steps leaves on disk.
    with unwritable_directory(inbox), pytest.raises(PermissionError):
        move_to_error(source, errors / "scan.pdf", reason={"attempt": 1})
    assert names(errors) == ["scan.pdf.error.json"]
    assert source.read_bytes() == b"scan"
    final = move_to_error(source, errors / "scan.pdf", reason={"attempt": 2})
    assert final == errors / "scan.pdf"
    assert names(errors) == ["scan.pdf", "scan.pdf.error.json"]
    assert json.loads(reason_file_path(final).read_text("utf-8"))["attempt"] == 2


def test_move_to_error_leaves_another_files_orphan_reason_alone(tmp_path: Path) -> None:
    errors = tmp_path / "error"
    write_json_atomic(errors / "scan.pdf.error.json", {"source_path": "/elsewhere/scan.pdf"})
    (tmp_path / "scan.pdf").write_bytes(b"scan")
    final = move_to_error(tmp_path / "scan.pdf", errors / "scan.pdf", reason={})
    assert final == errors / "scan (1).pdf"
    orphan = json.loads((errors / "scan.pdf.error.json").read_text("utf-8"))
    assert orphan == {"source_path": "/elsewhere/scan.pdf"}


def test_move_to_error_finishes_a_half_done_link_move(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"scan")
    (tmp_path / "error").mkdir()
    os.link(source, tmp_path / "error" / "scan.pdf")
    final = move_to_error(source, tmp_path / "error" / "scan.pdf", reason={"message": "m"})
    assert final == tmp_path / "error" / "scan.pdf"
    assert not source.exists()
    assert json.loads(reason_file_path(final).read_text("utf-8"))["message"] == "m"


def test_move_to_error_of_a_vanished_file_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        move_to_error(tmp_path / "gone.pdf", tmp_path / "error" / "gone.pdf", reason={})
    assert not (tmp_path / "error").exists()


def test_move_to_error_keeps_the_reason_name_within_255_bytes(tmp_path: Path) -> None:
    name = "é" * 125 + ".pdf"  # 254 bytes: fits alone, not with ".error.json"
    (tmp_path / name).write_bytes(b"scan")
    final = move_to_error(tmp_path / name, tmp_path / "error" / name, reason={})
    assert final.read_bytes() == b"scan"
    assert final.name.endswith(".pdf")
    assert name_bytes(reason_file_path(final)) <= NAME_MAX_BYTES
    assert reason_file_path(final).is_file()


# --- delete, read-only, full ---------------------------------------------------------------


def test_delete_file_removes_and_tolerates_missing(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"")
    delete_file(tmp_path / "scan.pdf")
    delete_file(tmp_path / "scan.pdf")
    assert names(tmp_path) == []


def test_probe_writable_succeeds_and_leaves_nothing(tmp_path: Path) -> None:
    assert probe_writable(tmp_path / "new") is None
    assert names(tmp_path / "new") == []


def test_unwritable_directory_errors_propagate_unchanged(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"scan")
    with unwritable_directory(tmp_path / "out") as out:
        with pytest.raises(PermissionError):
            write_atomic(out / "scan.txt", b"text")
        with pytest.raises(PermissionError):
            move_file(tmp_path / "scan.pdf", out / "scan.pdf")
        reason = probe_writable(out)
        assert reason is not None
        assert "cannot create" in reason
        assert names(out) == []
    assert (tmp_path / "scan.pdf").read_bytes() == b"scan"


def test_read_only_filesystem_raises_erofs(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"scan")
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as readonly:
        with pytest.raises(OSError) as caught:
            write_atomic(readonly / "scan.txt", b"text")
        assert caught.value.errno == errno.EROFS
        with pytest.raises(OSError) as caught:
            move_to_error(tmp_path / "scan.pdf", readonly / "scan.pdf", reason={})
        assert caught.value.errno == errno.EROFS
        assert probe_writable(readonly) is not None
    assert (tmp_path / "scan.pdf").read_bytes() == b"scan"


def test_full_filesystem_raises_enospc_and_leaves_nothing(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=64k") as small:
        with pytest.raises(OSError) as caught:
            write_atomic(small / "scan.txt", b"x" * (1 << 20))
        assert caught.value.errno == errno.ENOSPC
        assert names(small) == []
        write_atomic(small / "scan.txt", b"small enough")
        assert (small / "scan.txt").read_bytes() == b"small enough"
