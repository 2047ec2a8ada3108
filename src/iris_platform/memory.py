"""Giving the memory a training freed back to the operating system.

A training allocates far more than it keeps: the upload and the table parsed from it, the split and
the float32 copy scikit-learn fits on, the forest's pickle and skops dumps, the ONNX conversion's
lists and bytes, the parity check's rows and answers. All of that is freed when the training returns,
yet the server's resident memory stayed near its peak (a 1,000-tree forest on a 17 MB table left
gigabytes behind): glibc's malloc keeps what is freed in its arenas for later reuse (the threads of
the request pool and of onnxruntime get arenas of their own) and hands back only what lies at the very
top of a heap. `malloc_trim(0)` returns every whole free page of every arena.

`release_memory` runs a full garbage collection first (a cycle, such as an exception's traceback and
the frames it holds, would otherwise keep a table alive until the collector's next full pass), then
trims. It costs milliseconds once per training, and nothing on the prediction path. Where the C library
has no `malloc_trim` (musl, macOS, Windows) only the collection runs.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Released:
    """What one release did: the resident memory before and after it (None where unknown) and its cost."""

    rss_before: int | None  # bytes
    rss_after: int | None  # bytes
    collected: int  # unreachable objects the garbage collector freed
    trimmed: bool  # whether malloc_trim ran
    seconds: float

    @property
    def returned(self) -> int | None:
        """Bytes handed back to the operating system (never below 0)."""
        if self.rss_before is None or self.rss_after is None:
            return None
        return max(0, self.rss_before - self.rss_after)


def resident_bytes() -> int | None:
    """This process's resident memory (Linux's /proc/self/statm), or None where there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up in the C library this process already runs; None if it has none."""
    try:
        function = ctypes.CDLL(None).malloc_trim  # dlopen(NULL): the symbols already loaded
    except (OSError, TypeError, AttributeError):  # no such symbol, or no dlopen(NULL) (Windows)
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def can_trim() -> bool:
    """Whether the C library can hand free heap memory back (glibc)."""
    return _malloc_trim() is not None


def release_memory() -> Released:
    """Free unreachable cycles, then return every free page of the C heap to the operating system."""
    start = time.perf_counter()
    before = resident_bytes()
    collected = gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    released = Released(before, resident_bytes(), collected, trim is not None, time.perf_counter() - start)
    if released.returned is not None:
        log.info(
            "released %.0f MB to the operating system after the training (resident now %.0f MB, %.0f ms)",
            released.returned / 2**20,
            (released.rss_after or 0) / 2**20,
            released.seconds * 1000,
        )
    return released


@contextmanager
def releasing_memory() -> Iterator[None]:
    """Release (see `release_memory`) when the block ends, whether it returned or raised."""
    try:
        yield
    finally:
        release_memory()
