"""Running the CUDA target's kernels on Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), correctly and
not too slowly.

The simulator runs every thread of a block as a Python thread and implements ``cuda.syncthreads`` by a
manager thread that polls the others. Two things follow:

- **A race in its shared memory.** ``cuda.shared.array`` looks the caller's line up in a dict and, if it
  is missing, allocates and stores a new array, with no lock between the look-up and the store
  (numba-cuda 0.30, ``simulator/kernelapi.py``, ``FakeCUDAShared.array``). When Python switches threads
  between the two, two threads of one block get *different* arrays, and a tree reduction through them
  sums garbage. It is rare at Python's default switch interval (5 ms) and about one launch in 150 at a
  short one. :func:`patch_shared_memory_race` makes the allocation atomic (``tests/test_cuda.py`` forces
  the thread switch inside the look-up to check it).
- **Barriers cost a thread switch each.** Every ``syncthreads`` waits until the polling thread sees all
  threads blocked, so a kernel's time is dominated by switch intervals, not by work.
  :func:`fast_thread_switching` shortens the interval while kernels run (training runs about three times
  faster) and restores it after. It is safe only once the race above is patched.

Nothing here runs on a real GPU.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

SIMULATOR_SWITCH_INTERVAL_S = 1e-5
_allocation_lock = threading.Lock()


def _atomic_shared_array(self, shape, dtype, alignment=None):
    """``FakeCUDAShared.array`` with the look-up and the store under one lock; the rest as the simulator
    does it (an array per calling source line, shared by the threads of the launch)."""
    from numba.core import types
    from numba.np import numpy_support

    if alignment is not None:
        raise RuntimeError("Array alignment is not supported in cudasim")
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    if shape == 0:
        count = self._dynshared_size // dtype.itemsize
        return np.frombuffer(self._dynshared.data, dtype=dtype, count=count)
    caller = sys._getframe(1)
    key = (caller.f_code.co_filename, caller.f_lineno)
    with _allocation_lock:
        array = self._allocations.get(key)
        if array is None:
            array = np.empty(shape, dtype)
            self._allocations[key] = array
    return array


def patch_shared_memory_race() -> None:
    """Replace the simulator's shared-array allocation by the atomic one (idempotent)."""
    from numba.cuda.simulator import kernelapi

    shared = getattr(kernelapi, "FakeCUDAShared", None)
    if shared is None or not hasattr(shared, "array"):
        raise RuntimeError("this numba-cuda's simulator has no FakeCUDAShared.array to make thread-safe")
    shared.array = _atomic_shared_array


@contextmanager
def fast_thread_switching() -> Iterator[None]:
    """Shorten Python's thread switch interval while simulated kernels run, then restore it."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SIMULATOR_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
