"""Promote every f32 value to f64 (for gradient checking with central differences)."""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..types import TensorType


def promote_float64(graph: Graph) -> Graph:
    g = graph.copy()
    for node in list(g.nodes()):
        if node.type.dtype != "f32":
            continue
        changes = {"type": TensorType(node.type.shape, "f64")}
        if node.op == "const":
            value = node.attrs["value"]
            changes["attrs"] = {**node.attrs,
                                "value": value.astype(np.float64) if isinstance(value, np.ndarray) else value}
        g.update(node.id, **changes)
    return g
