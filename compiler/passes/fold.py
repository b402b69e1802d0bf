"""Constant folding: evaluate, at compile time, nodes whose operands are all constants."""

from __future__ import annotations

import numpy as np

from ..builder import Builder
from ..graph import Graph
from ..ops.registry import get_op

MAX_FOLDED_ELEMENTS = 4096  # larger constants would bloat the program; leave them to run time


def constant_fold(graph: Graph) -> Graph:
    g = graph.copy()
    b = Builder(g)
    for node_id in g.order():
        node = g.node(node_id)
        op = get_op(node.op)
        if op.category == "source" or not op.pure:
            continue
        value = _static_value(g, node, op)
        if value is None:
            continue
        with b.at(node.line, node.col, origin=node.origin):
            folded = b.const(value if value.ndim else value.item(), node.type.dtype)
        g.replace_uses(node_id, folded)
        if node.name is not None:
            g.update(folded, name=node.name)
        g.remove(node_id)
    return g


def _static_value(g: Graph, node, op) -> np.ndarray | None:
    if not node.type.is_static or node.type.numel() > MAX_FOLDED_ELEMENTS:
        return None
    operands = [g.node(i) for i in node.inputs]
    if op.static_value is not None:
        value = op.static_value([o.type for o in operands], node.attrs)
        return None if value is None else np.asarray(value, dtype=node.type.numpy_dtype)
    if not operands or any(o.op != "const" for o in operands):
        return None
    args = [np.asarray(o.attrs["value"], dtype=o.type.numpy_dtype) for o in operands]
    with np.errstate(all="ignore"):
        value = np.asarray(op.forward(args, node.attrs), dtype=node.type.numpy_dtype)
    return value if np.all(np.isfinite(value)) or not np.issubdtype(value.dtype, np.floating) else None
