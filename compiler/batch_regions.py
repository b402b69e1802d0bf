"""Batch regions: runs of an entry point's kernels that work example by example, so that a target can run
them chunk of the batch by chunk, the chunks across threads (the cpu target: one ``prange`` per region).

A kernel is *batch-local* when its work for example ``n`` reads only example ``n`` of the values computed
earlier in the same region (anything computed before the region may be read anywhere): a loop over
``[N, ...]`` whose loads of region values read them at ``i0``; a matrix product per example
(``W @ cols[n]``); col2im of one example (``unwindow``); a view (``reshape``). A sum over the batch axis (a
bias's or a weight's gradient) is batch-local too: each chunk adds into its own partial sums, added up in
order after the region, so results do not depend on the number of threads; nothing in the region may read
such a sum. Kernels that are not batch-local (a product over the whole batch, the loss) are moved after the
region when nothing in it reads them, so a network's forward pass and its backward pass are a region each.

Worth a region: enough work per example (:data:`MIN_WORK`). A region costs compile time, 10-15 s with
Numba (its parallel loop's body is compiled again through Numba's parfor passes and LLVM), and saves
about a fifth of a convolutional network's step (the CNN benchmark, 28x28 images: 207 K and 126 K elements
per example in its two regions). A small model's regions would not pay for their compile time in a whole
training run (models/cnn_digits.model, 8x8 images: 34 K and 47 K elements; its 25 epochs take 6 s), and a
dense layer's few hundred features per example never qualify.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .graph import Graph, Node
from .index_maps import AffineExpr
from .ops.registry import get_op
from .schedule import GemmKernel, Load, LoopKernel, OpKernel, ScheduledKernel

MIN_WORK = 98_304  # elements computed per example in a region, at least (96 K)
SUMMABLE = ("sum", "mean")  # reductions over the batch a chunk can add into partial sums
VIEWS = ("reshape", "expand_dims")


@dataclass(frozen=True)
class BatchRegion:
    """Kernels ``start`` to ``stop`` (exclusive) of an entry point's list run chunk by chunk."""

    start: int
    stop: int


def plan_regions(kernels: Sequence[ScheduledKernel], graph: Graph,
                 ) -> tuple[tuple[ScheduledKernel, ...], tuple[BatchRegion, ...]]:
    """The kernels, reordered where a region gains by it, and the regions among them."""
    batch = graph.batch_symbol
    if batch is None:
        return tuple(kernels), ()
    ordered: list[ScheduledKernel] = []
    regions: list[BatchRegion] = []
    pending = list(kernels)
    while pending:
        region, rest = _grow(pending, graph)
        if _work(region, batch) < max(MIN_WORK, 1):
            ordered.append(pending.pop(0))
            continue
        regions.append(BatchRegion(len(ordered), len(ordered) + len(region)))
        ordered += region
        pending = rest
    return tuple(ordered), tuple(regions)


def _grow(pending: list[ScheduledKernel], graph: Graph) -> tuple[list[ScheduledKernel], list[ScheduledKernel]]:
    """The region that starts with ``pending[0]``, and the kernels left for after it (in their order)."""
    region: list[ScheduledKernel] = []
    rest: list[ScheduledKernel] = []
    inside: set[int] = set()  # values the region computes example by example
    summed: set[int] = set()  # values it sums over the batch: complete only after it
    later: set[int] = set()  # values of kernels moved after it
    for kernel in pending:
        reads = _reads(kernel)
        ok = not (reads & (later | summed)) and _batch_local(kernel, graph, inside)
        if not ok:
            if not region:
                return [], pending
            rest.append(kernel)
            later |= _produced(kernel)
            continue
        region.append(kernel)
        for node in kernel.nodes:
            (summed if _sums_over_batch(node) else inside).add(node.id)
    return region, rest


def _produced(kernel: ScheduledKernel) -> set[int]:
    return {n.id for n in kernel.nodes}


def _loads(kernel: LoopKernel) -> list[Load]:
    return [o for s in kernel.statements for o in s.operands if isinstance(o, Load)]


def _reads(kernel: ScheduledKernel) -> set[int]:
    if isinstance(kernel, LoopKernel):
        return {v for load in _loads(kernel) for v in (load.value, *load.map.indirect_values())}
    if isinstance(kernel, GemmKernel):
        reads = {kernel.a.value, kernel.b.value}
        return reads | (_reads(kernel.epilogue) - {kernel.node.id} if kernel.epilogue else set())
    op = get_op(kernel.node.op)
    return {i for k, i in enumerate(kernel.node.inputs) if k not in op.shape_only}


def _sums_over_batch(node: Node) -> bool:
    if node.op == "contract_batch":
        return True
    return get_op(node.op).reduce is not None and 0 in node.attrs["axis"]


def _batch_first(shape: tuple, batch: str) -> bool:
    return bool(shape) and shape[0] == batch


def _batch_local(kernel: ScheduledKernel, graph: Graph, inside: set[int]) -> bool:
    batch = graph.batch_symbol
    if isinstance(kernel, LoopKernel):
        return _loop_is_batch_local(kernel, graph, inside)
    if isinstance(kernel, GemmKernel):
        return _product_is_per_example(kernel, graph)
    node = kernel.node
    operands = [graph.node(i).type.shape for i in node.inputs]
    if node.op in VIEWS:
        return True  # a view of memory allocated before the region
    if node.op == "unwindow":
        return _batch_first(operands[0], batch)
    if node.op == "contract_batch":  # sum over the leading axes of a @ b^T: here, the batch alone
        return all(len(shape) == 3 and shape[0] == batch for shape in operands)
    return False


def _loop_is_batch_local(kernel: LoopKernel, graph: Graph, inside: set[int]) -> bool:
    batch = graph.batch_symbol
    if kernel.given or not kernel.domain or kernel.domain[0] != batch:
        return False
    for node in kernel.reductions:
        if 0 in node.attrs["axis"] and (get_op(node.op).reduce not in SUMMABLE
                                        or all(d == 1 for d in node.type.shape)):
            return False  # a maximum over the batch, or a total: not in partial sums
    at_example = AffineExpr.axis(0)
    for load in _loads(kernel):
        if set(load.map.indirect_values()) & inside:
            return False
        if load.value in inside and (not _batch_first(graph.node(load.value).type.shape, batch)
                                     or load.map.exprs[0] != at_example):
            return False
    return True


def _product_is_per_example(kernel: GemmKernel, graph: Graph) -> bool:
    """A matrix product with one batch axis, the batch, and no operand swapped: ``W @ cols[n]`` or
    ``a[n] @ b[n]``, one product per example."""
    batch = graph.batch_symbol
    if kernel.epilogue is not None or kernel.a.swapped or kernel.b.swapped:
        return False
    a, b = (graph.node(operand.value).type.shape for operand in (kernel.a, kernel.b))
    return (len(kernel.node.type.shape) == 3 and _batch_first(kernel.node.type.shape, batch)
            and len(b) == 3 and _batch_first(b, batch) and (len(a) == 2 or (len(a) == 3 and _batch_first(a, batch))))


def _work(region: list[ScheduledKernel], batch: str) -> int:
    """Elements the region computes per example (its values' sizes, the batch axis left out)."""
    total = 0
    for kernel in region:
        if isinstance(kernel, OpKernel) and kernel.node.op in VIEWS:
            continue  # no work: a view
        for node in kernel.nodes:
            shape = node.type.shape
            if shape and shape[0] == batch and all(isinstance(d, int) for d in shape[1:]):
                total += math.prod(shape[1:])
    return total
