"""Parameter storage: initialize from the graph's initializers, check loaded values."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.initializers import initialize
from gradc.dsl.diagnostics import DataError


def init_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Sample every parameter. Each draws from its own stream, seeded by ``seed`` and its name, so adding
    a parameter to a model leaves the others' initial values unchanged."""
    params = {}
    for name, node_id in graph.params().items():
        node = graph.node(node_id)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        params[name] = initialize(node.attrs["init"], node.type.shape, node.type.numpy_dtype, rng)
    return params


def check_params(graph: Graph, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate a full set of parameter values (from a file) against the graph's declarations."""
    declared = graph.params()
    missing = sorted(set(declared) - set(values))
    extra = sorted(set(values) - set(declared))
    if missing:
        raise DataError(f"parameters file lacks {', '.join(missing)}")
    if extra:
        raise DataError(f"parameters file has unknown entries {', '.join(extra)} "
                        f"(the model's parameters are {', '.join(declared)})")
    out = {}
    for name, node_id in declared.items():
        t = graph.node(node_id).type
        array = np.asarray(values[name])
        if tuple(array.shape) != tuple(t.shape):
            raise DataError(f"parameter '{name}' should have shape {tuple(t.shape)}, got {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise DataError(f"parameter '{name}' must hold finite numbers")
        out[name] = array.astype(t.numpy_dtype)
    return out
