"""How many threads the BLAS behind Numba's matrix products may use: one, unless the user says otherwise.

Two reasons. The cpu kernel library runs a batch's per-example products (convolutions as GEMMs, their
gradients, col2im) across Numba's threads, each calling the BLAS: a BLAS with threads of its own inside them
would put two pools on the same cores (measured on the CNN benchmark at batch 256 on 2 cores: 442 ms a step
against 251 ms with a one-thread BLAS). And gradc's other products are small (a batch of 32 by a few hundred
features): a BLAS thread pool costs more than it gains there, and on a busy machine (more runnable threads
than cores) its spinning threads made training 10-20 times slower (mlp_digits: 29 s of training with
OpenBLAS's 2 threads on a loaded 2-core machine, 1.5 s with one). A cpu program therefore caps the BLAS at one
thread when it is built, unless the user chose a number through the usual variables; Numba's own thread count
is ``NUMBA_NUM_THREADS`` (all cores by default).

Numba's thread pool must also be running before a cached program is loaded (:func:`start_numba_threads`).
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def limit_blas_threads(threads: int = 1) -> None:
    """Cap the BLAS thread pools at ``threads`` unless one of :data:`THREAD_VARIABLES` is set."""
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it the BLAS keeps its default
        return
    threadpool_limits(limits=threads, user_api="blas")


def start_numba_threads() -> None:
    """Start Numba's threading layer now. Code that runs loops across threads (the kernel library's batched
    helpers, batch regions) calls the layer's scheduler through symbols that Numba registers with LLVM only when
    it starts the layer: compiling such code starts it, but loading it from the on-disk cache does not, and a
    program loaded from the cache in a fresh process then failed with "LLVM ERROR: Symbol not found:
    allocate_sched" or a segmentation fault (Numba issue 4807). ``get_num_threads`` starts the layer."""
    import numba

    numba.get_num_threads()
