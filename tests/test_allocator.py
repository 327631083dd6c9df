"""ocrwatch.allocator in real child interpreters: freed large blocks go back to the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import write_config
from daemon_process import daemon

from ocrwatch import allocator
from ocrwatch.emulator import Emulator

# Allocate, touch and free 4 MiB three times; print how much the RSS grew (KiB).
CHILD = """
import sys
from ocrwatch import allocator

def rss():
    with open("/proc/self/status") as status:
        return int(next(l for l in status if l.startswith("VmRSS")).split()[1])

print(allocator.keep_large_blocks_mapped() if sys.argv[1] == "set" else "unset")
before = rss()
for _ in range(3):
    block = bytearray(4 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    del block
print(rss() - before)
"""


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="glibc only")


# glibc's own tunables would change what the second test sees.
CLEAN_ENVIRONMENT = {
    k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
}


def run_child(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**CLEAN_ENVIRONMENT, **env},
    )
    answer, grown = done.stdout.splitlines()[-2:]  # after the module's own log line
    return answer, int(grown)


def test_a_freed_large_block_goes_back_once_the_threshold_is_set() -> None:
    answer, grown = run_child("set")
    assert answer == "True"
    assert grown < 1024  # KiB: the 4 MiB went back each time


def test_without_it_glibc_keeps_a_freed_large_block_in_the_heap() -> None:
    # What the module is for: the second 4 MiB block comes from the heap and stays there.
    answer, grown = run_child("unset")
    assert answer == "unset"
    assert grown > 3 * 1024


def test_an_operators_own_setting_is_left_alone() -> None:
    answer, _ = run_child("set", MALLOC_MMAP_THRESHOLD_="8388608")
    assert answer == "False"


def test_ocrwatch_run_sets_it_before_the_daemon_starts(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with daemon(config, tmp_path / "daemon.log", log_level="debug") as running:
        running.wait_for_event("daemon_ready")
        set_at = [e for e in running.events() if e["event"] == "allocator_set"]
        assert set_at == [
            {**set_at[0], "mmap_threshold_bytes": allocator.MMAP_THRESHOLD_BYTES, "accepted": True}
        ]
