"""Logging ignored files: once per path, a bounded number of lines per minute, then a count."""

from __future__ import annotations

from ocrwatch.ignored import IgnoredFiles


def test_each_ignored_path_is_logged_once() -> None:
    ignored = IgnoredFiles()
    assert ignored.note("a.part", now=0.0).log
    assert not ignored.note("a.part", now=1.0).log
    assert not ignored.note("a.part", now=1000.0).log


def test_a_folder_of_ignored_files_is_rate_limited_and_counted() -> None:
    ignored = IgnoredFiles(burst=3, window_seconds=60.0)
    logged = [ignored.note(f"f{n}.tmp", now=float(n) / 100).log for n in range(100)]
    assert logged.count(True) == 3 and logged[:3] == [True, True, True]
    # The rescan meets them again after the window: the held-back count comes out once.
    notices = [ignored.note(f"f{n}.tmp", now=300.0) for n in range(100)]
    assert [n.suppressed for n in notices if n.suppressed] == [97]
    assert not any(n.log for n in notices)


def test_memory_of_logged_paths_is_bounded() -> None:
    ignored = IgnoredFiles(burst=10**9, remembered=100)
    for n in range(1000):
        ignored.note(f"{n}.tmp", now=0.0)
    assert ignored.note("999.tmp", now=0.0).log is False
    assert ignored.note("0.tmp", now=0.0).log is True  # forgotten long ago: one more line
