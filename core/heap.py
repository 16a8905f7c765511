"""The C heap as pipeline stage processes use it: large blocks served from the heap and freed
memory kept there (glibc), so activations do not fault fresh pages in on every frame.

Stage processes keep their heap this way for good; calibration and profiling time their
kernels under the same allocator behaviour (:func:`kept_heap`), and put glibc's initial
settings back after.
"""

from __future__ import annotations

import contextlib
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling on 64-bit
DEFAULT_THRESHOLD = 128 * 2**10  # glibc's initial trim and mmap thresholds


def _mallopt(mmap_bytes: int, trim_bytes: int) -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)
                    and libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))
    except (OSError, AttributeError):
        return False


def keep_heap() -> bool:
    """Serve large blocks from the heap and keep freed memory (this process, for good).

    glibc maps large blocks straight from the OS and gives freed memory back; a stage that
    holds several microbatches at once then touches fresh pages for every activation, and
    the page faults cost more than the arithmetic (MobileNetV2's first stage: 20 ms per
    frame against 11 ms with this). False where the C library has no mallopt."""
    return _mallopt(MMAP_THRESHOLD_MAX, 2**31 - 1)


@contextlib.contextmanager
def kept_heap():
    """:func:`keep_heap` for the duration, glibc's initial thresholds after."""
    kept = keep_heap()
    try:
        yield kept
    finally:
        if kept:
            _mallopt(DEFAULT_THRESHOLD, DEFAULT_THRESHOLD)
