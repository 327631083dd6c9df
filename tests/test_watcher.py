"""Real watchdog observers (inotify and polling) on real folders; waits have deadlines."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

from ocrwatch.model import WatchMode
from ocrwatch.watcher import MOVE_PAIRING_SECONDS, Watchers, WatchSpec, filesystem_type, scan

IS_ROOT = os.geteuid() == 0
DEADLINE_SECONDS = 10.0
POLL_SECONDS = 0.05

Report = tuple[str, Path, bool]


class Intake:
    """The sink the service would pass: a queue, plus a deadline-bound wait on it."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Report] = queue.Queue()
        self.seen: list[Report] = []

    def put(self, inbox: str, path: Path, is_event: bool) -> None:
        self.queue.put((inbox, path, is_event))

    def wait_for(self, *paths: Path) -> list[Report]:
        """Block until every path was reported; fail at the deadline."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        missing = set(paths)
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"not reported in time: {sorted(map(str, missing))}")
            try:
                report = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(report)
            missing.discard(report[1])
        return self.seen

    def paths(self) -> set[Path]:
        return {path for _, path, _ in self.seen}


def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


MODES = [WatchMode.EVENTS, WatchMode.POLLING]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    root.mkdir()
    return root


@pytest.fixture
def intake() -> Intake:
    return Intake()


@pytest.fixture
def start_watching(intake: Intake) -> Iterator[Callable[..., Watchers]]:
    started: list[Watchers] = []

    def start(root: Path, mode: WatchMode, *, recursive: bool = True) -> Watchers:
        spec = WatchSpec("scans", root, recursive, mode, polling_interval_seconds=0.1)
        watchers = Watchers([spec], intake.put)
        started.append(watchers)
        watchers.start()
        return watchers

    yield start
    for watchers in started:
        watchers.stop()


@pytest.mark.parametrize("mode", MODES)
def test_a_file_written_in_place_arrives(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers], mode: WatchMode
) -> None:
    start_watching(inbox, mode)
    path = inbox / "scan.png"
    with path.open("wb") as file:
        file.write(b"page one")
        file.flush()
        file.write(b"page two")
    reports = intake.wait_for(path)
    assert ("scans", path, True) in reports


@pytest.mark.parametrize("mode", MODES)
def test_a_file_renamed_in_from_a_temp_name_arrives_with_its_final_name(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers], mode: WatchMode
) -> None:
    start_watching(inbox, mode)
    temp = inbox / "scan.pdf.part"
    temp.write_bytes(b"%PDF-1.4 ...")
    temp.rename(inbox / "scan.pdf")
    intake.wait_for(inbox / "scan.pdf")


def test_a_move_out_of_the_inbox_is_paired_within_a_short_window(
    inbox: Path, tmp_path: Path, intake: Intake, start_watching: Callable[..., Watchers]
) -> None:
    """watchdog's reader sleeps out its move-pairing delay before any later event; the
    daemon's own sidecar renames and moves out would hold new files up by 0.5 s each."""
    start_watching(inbox, WatchMode.EVENTS)
    # The knob is read by every new watch group; if watchdog renames it this fails.
    assert InotifyMoveEventGrouper()._queue.delay == MOVE_PAIRING_SECONDS <= 0.05
    leaving = inbox / "done.png"
    leaving.write_bytes(b"done")
    intake.wait_for(leaving)
    leaving.rename(tmp_path / "done.png")  # an unpaired IN_MOVED_FROM
    arriving = tmp_path / "new.png"
    arriving.write_bytes(b"new")
    arriving.rename(inbox / "new.png")
    intake.wait_for(inbox / "new.png")


@pytest.mark.parametrize("mode", MODES)
def test_a_file_in_a_subfolder_of_a_recursive_inbox_arrives(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers], mode: WatchMode
) -> None:
    start_watching(inbox, mode)
    folder = inbox / "2024" / "März"
    folder.mkdir(parents=True)
    (folder / "scan.jpg").write_bytes(b"jpeg")
    intake.wait_for(folder / "scan.jpg")


@pytest.mark.parametrize("mode", MODES)
def test_a_folder_moved_into_a_recursive_inbox_reports_its_files(
    inbox: Path,
    tmp_path: Path,
    intake: Intake,
    start_watching: Callable[..., Watchers],
    mode: WatchMode,
) -> None:
    batch = tmp_path / "batch"
    (batch / "deeper").mkdir(parents=True)
    (batch / "one.png").write_bytes(b"1")
    (batch / "deeper" / "two.png").write_bytes(b"2")
    start_watching(inbox, mode)
    batch.rename(inbox / "batch")
    intake.wait_for(inbox / "batch" / "one.png", inbox / "batch" / "deeper" / "two.png")


def test_a_non_recursive_inbox_reports_top_level_files_only(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers]
) -> None:
    start_watching(inbox, WatchMode.EVENTS, recursive=False)
    (inbox / "sub").mkdir()
    (inbox / "sub" / "hidden-away.png").write_bytes(b"x")
    (inbox / "top.png").write_bytes(b"x")
    intake.wait_for(inbox / "top.png")
    assert inbox / "sub" / "hidden-away.png" not in intake.paths()


@pytest.mark.parametrize("mode", MODES)
def test_stop_joins_every_thread(inbox: Path, intake: Intake, mode: WatchMode) -> None:
    before = set(threading.enumerate())
    spec = WatchSpec("scans", inbox, True, mode, polling_interval_seconds=0.1)
    watchers = Watchers([spec, WatchSpec("b", inbox / "missing", False, mode, 0.1)], intake.put)
    watchers.start()
    assert set(threading.enumerate()) - before  # observers are running
    watchers.stop()
    assert not [t.name for t in set(threading.enumerate()) - before if t.is_alive()]


@pytest.mark.parametrize("mode", MODES)
def test_a_removed_and_recreated_inbox_is_watched_again_after_check(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers], mode: WatchMode
) -> None:
    watchers = start_watching(inbox, mode)
    assert watchers.check() == []
    shutil.rmtree(inbox)
    problem = f"inbox scans: {inbox} is missing; waiting for it to reappear"
    assert watchers.check() == [problem]
    assert watchers.check() == [problem]  # still missing, still said
    inbox.mkdir()
    (inbox / "while-away.png").write_bytes(b"x")  # no watch saw this one
    assert watchers.check() == []
    reports = intake.wait_for(inbox / "while-away.png")
    assert ("scans", inbox / "while-away.png", False) in reports  # from the catch-up scan
    (inbox / "after.png").write_bytes(b"x")
    intake.wait_for(inbox / "after.png")


@pytest.mark.parametrize("mode", MODES)
def test_an_inbox_replaced_between_checks_is_rewatched(
    inbox: Path,
    tmp_path: Path,
    intake: Intake,
    start_watching: Callable[..., Watchers],
    mode: WatchMode,
) -> None:
    watchers = start_watching(inbox, mode)
    replacement = tmp_path / "replacement"
    replacement.mkdir()
    shutil.rmtree(inbox)
    replacement.rename(inbox)  # a new inode at the same path, as after a remount
    problems = watchers.check()
    assert problems == [
        f"inbox scans: the watch on {inbox} had stopped or its folder was replaced; restarted it"
    ]
    assert watchers.check() == []
    (inbox / "new.png").write_bytes(b"x")
    intake.wait_for(inbox / "new.png")


@pytest.mark.parametrize("mode", MODES)
def test_an_inbox_missing_at_start_is_reported_and_picked_up_later(
    tmp_path: Path, intake: Intake, start_watching: Callable[..., Watchers], mode: WatchMode
) -> None:
    root = tmp_path / "share"
    watchers = start_watching(root, mode)  # must not raise
    assert watchers.check() == [f"inbox scans: {root} is missing; waiting for it to reappear"]
    root.mkdir()
    (root / "waiting.png").write_bytes(b"x")
    assert watchers.check() == []
    intake.wait_for(root / "waiting.png")
    (root / "next.png").write_bytes(b"x")
    intake.wait_for(root / "next.png")


def test_an_inbox_that_is_a_file_is_reported(
    tmp_path: Path, start_watching: Callable[..., Watchers]
) -> None:
    root = tmp_path / "oops"
    root.write_text("not a folder")
    watchers = start_watching(root, WatchMode.EVENTS)
    assert watchers.check() == [f"inbox scans: {root} is not a folder"]


def test_a_polled_inbox_whose_emitter_died_is_restarted(
    inbox: Path, intake: Intake, start_watching: Callable[..., Watchers]
) -> None:
    watchers = start_watching(inbox, WatchMode.POLLING)
    inbox.rename(inbox.with_name("elsewhere"))  # the poller stops on its own
    inbox.mkdir()
    problems = watchers.check()
    assert len(problems) == 1
    assert "restarted" in problems[0]
    (inbox / "x.png").write_bytes(b"x")
    intake.wait_for(inbox / "x.png")


def test_watch_spec_refuses_an_unresolved_mode(inbox: Path) -> None:
    with pytest.raises(ValueError, match="choose_watch_mode"):
        WatchSpec("scans", inbox, True, WatchMode.AUTO, 1.0)


# ---- scan -------------------------------------------------------------------------------


def test_scan_finds_files_in_nested_folders_and_skips_ignored_ones(inbox: Path) -> None:
    for relpath in ["a.png", "x/b.png", "x/y/z/c.pdf", "@eaDir/thumb.jpg", ".git/obj",
                    "x/.hidden/d.png", "x/#recycle/e.png", "x/.f.png"]:  # fmt: skip
        path = inbox / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = {p.relative_to(inbox).as_posix() for p in scan(inbox, recursive=True)}
    # A hidden file is still yielded: the service decides about files, with a reason.
    assert found == {"a.png", "x/b.png", "x/y/z/c.pdf", "x/.f.png"}
    assert {p.name for p in scan(inbox, recursive=False)} == {"a.png"}


def test_scan_yields_special_files_and_does_not_follow_links(inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    os.mkfifo(inbox / "pipe.png")
    (inbox / "link.png").symlink_to(outside / "secret.png")
    (inbox / "folder-link").symlink_to(outside, target_is_directory=True)
    (inbox / "dangling.png").symlink_to(tmp_path / "nowhere")
    found = {p.name for p in scan(inbox, recursive=True)}
    assert found == {"pipe.png", "link.png", "folder-link", "dangling.png"}


def test_scan_survives_an_unreadable_subfolder(inbox: Path) -> None:
    locked = inbox / "locked"
    locked.mkdir()
    (locked / "in-there.png").write_bytes(b"x")
    (inbox / "ok.png").write_bytes(b"x")
    locked.chmod(0)
    try:
        found = {p.name for p in scan(inbox, recursive=True)}
    finally:
        locked.chmod(0o700)
    assert "ok.png" in found
    if not IS_ROOT:  # root reads the folder whatever its mode
        assert "in-there.png" not in found


def test_scan_handles_undecodable_names(inbox: Path) -> None:
    raw = os.fsencode(inbox) + b"/scan-\xe4\xff.png"
    os.close(os.open(raw, os.O_CREAT | os.O_WRONLY, 0o600))
    (found,) = scan(inbox, recursive=True)
    assert os.fsencode(found) == raw
    assert found.stat().st_size == 0


def test_scan_of_a_missing_root_raises_rather_than_looking_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(scan(tmp_path / "unmounted", recursive=True))


def test_scan_skips_a_subfolder_that_vanishes(inbox: Path) -> None:
    for name in ("a", "b"):
        (inbox / name).mkdir()
        (inbox / name / "f.png").write_bytes(b"x")
    found = []
    for path in scan(inbox, recursive=True):
        found.append(path)
        shutil.rmtree(inbox / "b", ignore_errors=True)  # gone before it is listed
    assert found == [inbox / "a" / "f.png"]


# ---- file system type -------------------------------------------------------------------


def test_filesystem_type_of_tmp_path(tmp_path: Path) -> None:
    fstype = filesystem_type(tmp_path)
    assert fstype is not None
    assert fstype.replace(".", "").replace("_", "").isalnum()


def test_filesystem_type_reads_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(
        b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        b"30 22 0:40 / /srv rw shared:2 - xfs /dev/sdb1 rw\n"
        b"31 30 0:41 / /srv/scan\\040inbox rw shared:3 - nfs4 nas:/scans rw,vers=4.2\n"
        b"32 30 0:42 / /srv/remote rw - fuse.sshfs me@host:/x rw,user_id=0\n"
        b"33 30 0:43 / /srv/remote rw - tmpfs tmpfs rw\n"  # mounted over the one before
        b"garbage line\n"
    )

    def fstype(path: str) -> str | None:
        return filesystem_type(Path(path), mountinfo=mountinfo)

    assert fstype("/srv/scan inbox/sub") == "nfs4"
    assert fstype("/srv/scan inboxes") == "xfs"  # a longer name is not inside the mount
    assert fstype("/srv/remote/a") == "tmpfs"
    assert fstype("/etc") == "ext4"
    assert filesystem_type(Path("/"), mountinfo=tmp_path / "absent") is None
