"""Random inputs for a graph, in the domain each consumer needs: class labels in range, probabilities in
(0, 1), distributions that sum to 1, and standard normal values otherwise."""

from __future__ import annotations

import numpy as np

from gradc.compiler.graph import Graph

from .feeds import DomainUse, domain_uses


def random_inputs(graph: Graph, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    first_use: dict[str, DomainUse] = {}
    for use in domain_uses(graph):
        first_use.setdefault(use.input, use)
    for name, node_id in graph.inputs().items():
        t = graph.node(node_id).type
        shape = tuple(batch if isinstance(d, str) else d for d in t.shape)
        use = first_use.get(name)
        domain, classes = (use.domain, use.classes) if use else ("real", 2)
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
