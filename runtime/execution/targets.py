"""The targets a program runs on, by name: the reference executor and the compiled targets."""

from __future__ import annotations

from gradc.compiler.driver import TARGETS as COMPILED
from gradc.compiler.graph import Graph

from .backends import CpuBackend, ReferenceBackend


def _cuda_backend(graph: Graph, use_cache: bool = True, sibling: object = None):
    from .cuda_backend import CudaBackend  # numba.cuda is imported only when the target is used

    return CudaBackend(graph, use_cache, sibling)


BACKENDS = {"reference": ReferenceBackend, "cpu": CpuBackend, "cuda": _cuda_backend}
COMPILED_TARGETS = tuple(COMPILED)
