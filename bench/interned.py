"""How full CPython 3.11's interned-string table is in a running process: a diagnostic.

CPython keeps one dict of interned strings: every identifier of every imported module, and
every path component that ``pathlib`` builds (it interns each one). The dict never shrinks
between resizes, and a resize sizes it from the strings alive at that moment: to the next
power of two at or above 3 x that count. With 65,536 slots it takes about 1 MiB; doubled,
about 1.9 MiB. A daemon whose count of live interned strings sits near 65,536 / 3 = 21,845
doubles or keeps its table depending on which files are in flight at a resize, and its RSS
steps by about 1 MiB (``docs/benchmarks.md``, "What limits it").

The table is a static variable of ``libpython3.11.so``, so this reads it from outside:
``nm`` gives the symbol's offset (the library must not be stripped, as in a pyenv build),
``/proc/PID/maps`` the library's base and ``/proc/PID/mem`` the dict (which needs ptrace
rights over PID: the same user, and its parent or root where ptrace is restricted).

    .venv/bin/python -m bench.interned PID [--every SECONDS]
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LIBRARY = "libpython3.11.so.1.0"
# CPython 3.11's layouts: PyDictObject {refcnt, type, ma_used, ma_version_tag, ma_keys, ...};
# PyDictKeysObject {dk_refcnt, dk_log2_size (1 byte) ..., dk_usable, dk_nentries, ...}.
_USED_OFFSET, _KEYS_OFFSET = 16, 32
_LOG2_OFFSET, _USABLE_OFFSET = 8, 16


@dataclass(frozen=True, slots=True)
class Table:
    live: int  # interned strings alive now
    slots: int
    free_entries: int  # insertions left before the next resize

    @property
    def next_slots(self) -> int:
        """The size a resize now would pick: the smallest power of two >= 3 x live."""
        return 1 << max(3, (3 * self.live - 1).bit_length())


def _library(pid: int) -> tuple[Path, int]:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].endswith(LIBRARY) and int(fields[2], 16) == 0:
            return Path(fields[5]), int(fields[0].split("-")[0], 16)
    raise SystemExit(f"{pid} has no {LIBRARY} mapped (a static or other Python build?)")


def _symbol_offset(library: Path) -> int:
    listing = subprocess.run(["nm", str(library)], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == "interned":
            return int(fields[0], 16)
    raise SystemExit(f"no symbol 'interned' in {library}: the library is stripped")


def read_table(pid: int, *, offset: int | None = None) -> Table:
    library, base = _library(pid)
    address = base + (offset if offset is not None else _symbol_offset(library))
    with Path(f"/proc/{pid}/mem").open("rb") as mem:

        def word(at: int) -> int:
            mem.seek(at)
            value: int = struct.unpack("q", mem.read(8))[0]
            return value

        table = word(address)
        keys = word(table + _KEYS_OFFSET)
        mem.seek(keys + _LOG2_OFFSET)
        log2_size = mem.read(1)[0]
        return Table(
            live=word(table + _USED_OFFSET),
            slots=1 << log2_size,
            free_entries=word(keys + _USABLE_OFFSET),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.interned", description=__doc__)
    parser.add_argument("pid", type=int)
    parser.add_argument("--every", type=float, default=0.0, help="sample every N seconds")
    args = parser.parse_args(argv)
    offset = _symbol_offset(_library(args.pid)[0])
    while True:
        table = read_table(args.pid, offset=offset)
        print(
            f"{time.strftime('%H:%M:%S')} live {table.live:,}  slots {table.slots:,}  "
            f"free entries {table.free_entries:,}  a resize now: {table.next_slots:,} slots",
            flush=True,
        )
        if args.every <= 0:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
