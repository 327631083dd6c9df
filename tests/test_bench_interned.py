"""bench/interned.py reads the interned-string table of a real child interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench import interned

CHILD = """
import sys
kept = [sys.intern(f"ocrwatch-test-{i}") for i in range(int(sys.argv[1]))]
print("ready", flush=True)
sys.stdin.read()
"""

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11)
    or not sysconfig.get_config_var("Py_ENABLE_SHARED")
    or shutil.which("nm") is None,
    reason="needs CPython 3.11 built as a shared library, and nm",
)


@contextmanager
def child(strings: int) -> Iterator[int]:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(strings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            yield process.pid
        finally:
            process.kill()


def test_it_counts_the_strings_a_process_keeps_interned() -> None:
    try:
        with child(0) as pid:
            bare = interned.read_table(pid)
    except SystemExit as exc:  # a stripped libpython: nothing to read
        pytest.skip(str(exc))
    with child(30_000) as pid:
        grown = interned.read_table(pid)
    assert 30_000 <= grown.live - bare.live < 30_500
    for table in (bare, grown):
        assert table.slots & (table.slots - 1) == 0  # a power of two
        assert 3 * table.live <= table.slots * 2  # dicts stay at most 2/3 full
        assert 0 <= table.free_entries < table.slots
    assert grown.slots > bare.slots
    assert grown.next_slots == 1 << (3 * grown.live - 1).bit_length()
