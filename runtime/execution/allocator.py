"""Keep freed memory for the next step instead of handing it back to the operating system.

A compiled step allocates its large values (a convolution's windows, activations of a big batch) with
``np.empty`` inside Numba, which calls ``malloc``. glibc serves a block above its mmap threshold (128 KiB at
first, adapting up to 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so the next step takes a page
fault on every 4 KiB of it again: for the CNN benchmark's step at batch 256 that was half the step (354 ms
against 184 ms with the memory kept, measured on the 2-core machine of docs/performance.md). Raising the
mmap and trim thresholds makes such blocks come from the heap and stay there, as a framework's caching
allocator would keep them; the process's resident memory then stays at its peak between steps.

Set ``GRADC_KEEP_FREED_MEMORY=0`` to leave glibc's defaults alone. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BELOW = 1 << 30  # blocks up to 1 GiB come from the heap; more than 1 GiB free at its top is trimmed

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they were raised."""
    global _done
    if _done or os.environ.get("GRADC_KEEP_FREED_MEMORY", "1") == "0":
        return False
    _done = True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators decide for themselves
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BELOW)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BELOW))
