"""glibc's allocator, set for a process that runs for months.

glibc gives a request of 128 KiB or more a mapping of its own, returned to the kernel when
freed. But when such a block is freed, glibc raises that threshold to the block's size, so the
next blocks of that size come from the heap. Freed there, they are soon split by small
allocations and seldom go back. A daemon reallocates a few such blocks for ever: CPython's
interned-string table (about 1 MiB) is rebuilt every few minutes while files stream through,
because ``pathlib`` interns every path component. In the 30-minute benchmark stream that
ratcheted the RSS up by one table, about 0.94 MiB, every few rebuilds.

Setting the threshold explicitly turns that adjustment off: every large block keeps its own
mapping and its memory goes back when it is freed. An operator's ``MALLOC_MMAP_THRESHOLD_`` is
left alone, and other C libraries are not touched.
"""

from __future__ import annotations

import ctypes
import os

import structlog

log = structlog.get_logger(__name__)

# mallopt's parameter number, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value
ENVIRONMENT_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"


def keep_large_blocks_mapped() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; False if not glibc or the operator set it."""
    if ENVIRONMENT_OVERRIDE in os.environ:
        log.debug("allocator_left_alone", reason=f"{ENVIRONMENT_OVERRIDE} is set")
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it; musl has a mallopt too)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("allocator_left_alone", reason="the C library is not glibc")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug("allocator_set", mmap_threshold_bytes=MMAP_THRESHOLD_BYTES, accepted=done)
    return done
