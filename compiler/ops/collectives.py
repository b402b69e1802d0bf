"""``ranks_sum``: the sum of a value over the ranks of a data-parallel world (the value itself in one process).

Internal: only the ``data-parallel`` training stage adds it (passes/data_parallel.py), around batchnorm's
batch statistics, so that every rank normalizes with the statistics of the whole global batch. Its gradient is
itself: each rank's objective is its share of the total, so the total's gradient with respect to a value that
every rank sums is the sum over the ranks of their gradients. The NumPy forward and the cpu kernel both call
:func:`gradc.compiler.collectives.sum_over_ranks`; the cuda target has no lowering for it (data-parallel
training runs on the cpu target).
"""

from __future__ import annotations

import numpy as np

from ..collectives import sum_over_ranks
from .registry import OpDef, register


def _forward(args, attrs) -> np.ndarray:
    out = np.array(args[0], copy=True, order="C")
    sum_over_ranks(out)
    return out


register(
    OpDef(
        name="ranks_sum",
        operands=("x",),
        infer=lambda ts, at: ts[0],
        forward=_forward,
        grad=lambda b, n, g: [lambda: b.ranks_sum(g)],
        category="internal",
        public=False,
        formula="the sum of x over the ranks of a data-parallel world (x in one process)",
        shape_rule="x's shape",
    )
)
