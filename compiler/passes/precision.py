"""Promote every f32 value to f64 (for gradient checking with central differences), scan bodies included."""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..types import TensorType


def promote_float64(graph: Graph) -> Graph:
    g = graph.copy()
    for node in list(g.nodes()):
        changes = {}
        if node.type.dtype == "f32":
            changes["type"] = TensorType(node.type.shape, "f64")
        if node.op == "const" and node.type.dtype == "f32":
            value = node.attrs["value"]
            changes["attrs"] = {**node.attrs,
                                "value": value.astype(np.float64) if isinstance(value, np.ndarray) else value}
        elif node.op == "scan":
            changes["attrs"] = {**node.attrs, "body": promote_float64(node.attrs["body"])}
        elif node.op == "result" and node.attrs["type"].dtype == "f32":
            changes["attrs"] = {**node.attrs, "type": TensorType(node.attrs["type"].shape, "f64")}
        if changes:
            g.update(node.id, **changes)
    if g.float_dtype == "f32":
        g.float_dtype = "f64"
    return g
