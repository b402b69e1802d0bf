"""Merging a loop kernel's trailing axes into one loop, where memory allows it.

A loop over ``[N, C, 26, 26]`` whose every access reads or writes its last two axes as they are (``x[i0, i1, i2,
i3]`` on an array of the same trailing sizes) or not at all (a bias ``b[i1]``) can run its last two loops as
one loop of 676 iterations over arrays viewed as ``[N, C, 676]``: C-contiguous arrays hold those elements in
the same order. The innermost loop gets long enough to vectorize well (26 is three 8-wide vectors and a
remainder, with the loop's setup each time): an activation's forward and backward over a convolution's output
ran 40% faster merged, on the CNN benchmark's training step.

:func:`merge_start` decides where the merged run begins (or that there is none); a target renders it (the cpu
target: views made with ``reshape`` before the loops; a cuda thread already indexes a flat position).
"""

from __future__ import annotations

from collections.abc import Callable

from .index_maps import AffineExpr, IndexMap, Indirect
from .ops.registry import get_op
from .schedule import Load, LoopKernel

ShapeOf = Callable[[int], tuple]  # a value's shape, by node id


def merge_start(kernel: LoopKernel, shape_of: ShapeOf) -> int | None:
    """The first of the trailing axes that merge into one loop (at least two of them, never the first axis,
    which a batch region splits), or None."""
    domain = kernel.domain
    if any("{i_last}" in (get_op(n.op).scalar or "") for n in kernel.nodes):
        return None  # the statement reads its innermost loop index (onehot)
    for start in range(1, len(domain) - 1):
        if all(isinstance(d, int) for d in domain[start:]) and _mergeable(kernel, shape_of, start):
            return start
    return None


def reads_merged(load: Load, start: int, rank: int) -> bool:
    """Whether ``load`` reads the merged axes (``start`` to ``rank``) as they are, last in its own axes: it then
    reads a merged view of its value. (In a mergeable kernel, every other load reads none of them.)"""
    exprs = load.map.exprs
    count = rank - start
    if len(exprs) < count or load.paddings or load.map.guards:
        return False
    head, tail = exprs[:len(exprs) - count], exprs[len(exprs) - count:]
    return all(e == AffineExpr.axis(start + t) for t, e in enumerate(tail)) and not _touches(IndexMap(head), start)


def _touches(index_map: IndexMap, start: int) -> bool:
    """Whether the map reads an axis from ``start`` on, or reads an index from memory (a gather)."""
    exprs = [*index_map.exprs, *(g.expr for g in index_map.guards)]
    return any(isinstance(e, Indirect) or any(axis >= start for axis, _ in e.terms) for e in exprs)


def _mergeable(kernel: LoopKernel, shape_of: ShapeOf, start: int) -> bool:
    rank = len(kernel.domain)
    merged = set(range(start, rank))
    for statement in kernel.statements:
        for operand in statement.operands:
            if not isinstance(operand, Load):
                continue
            shape = shape_of(operand.value)
            full = (reads_merged(operand, start, rank)
                    and tuple(shape[len(shape) - (rank - start):]) == tuple(kernel.domain[start:]))
            untouched = not _touches(operand.map, start) and not any(
                _touches(IndexMap((), p.guards), start) for p in operand.paddings)
            if not (full or untouched):
                return False
        if statement.reduce is not None:
            axes = set(statement.node.attrs["axis"])
            if axes & merged and not merged <= axes:
                return False  # a reduction over some of the merged axes only
    return True
