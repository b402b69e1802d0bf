"""Random inputs for a graph, in the domain each consumer needs: class labels in range, probabilities in
(0, 1), distributions that sum to 1, and standard normal values otherwise."""

from __future__ import annotations

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.ops.registry import get_op


def _domain(graph: Graph, node_id: int) -> tuple[str, int]:
    """The sampling domain of an input, from the ops that consume it, and a class count for labels."""
    for consumer in graph.consumers(node_id):
        node = graph.node(consumer)
        op = get_op(node.op)
        for position, operand in enumerate(node.inputs):
            if operand == node_id and position in op.domains:
                domain = op.domains[position]
                classes = graph.node(node.inputs[0]).type.shape[-1] if domain == "labels" else 0
                return domain, int(classes) if isinstance(classes, int) else 2
    return "real", 2


def random_inputs(graph: Graph, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, node_id in graph.inputs().items():
        t = graph.node(node_id).type
        shape = tuple(batch if isinstance(d, str) else d for d in t.shape)
        domain, classes = _domain(graph, node_id)
        if not t.is_float:
            out[name] = rng.integers(0, classes, size=shape).astype(t.numpy_dtype)
        elif domain == "probability":
            out[name] = rng.uniform(0.05, 0.95, size=shape).astype(t.numpy_dtype)
        elif domain == "distribution":
            raw = rng.uniform(0.1, 1.0, size=shape)
            out[name] = (raw / raw.sum(axis=-1, keepdims=True) if raw.ndim else raw).astype(t.numpy_dtype)
        else:
            out[name] = rng.normal(size=shape).astype(t.numpy_dtype)
    return out
