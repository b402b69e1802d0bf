"""The reference executor: run a graph node by node with each op's NumPy reference forward.

It is exact by construction (no fusion, no reordering) and is what the compiled targets are checked
against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx
import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.ops.registry import get_op
from gradc.dsl.diagnostics import DataError


def evaluate(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    wanted: Iterable[int],
) -> dict[int, np.ndarray]:
    """Compute the ``wanted`` nodes (and what they need); inputs must already be checked."""
    wanted = set(wanted)
    needed = set(wanted)
    for node_id in wanted:
        needed |= nx.ancestors(graph.dag, node_id)
    values: dict[int, np.ndarray] = {}
    for node_id in graph.order():
        if node_id not in needed:
            continue
        node = graph.node(node_id)
        if node.op == "input":
            values[node_id] = inputs[node.name]
        elif node.op == "param":
            values[node_id] = params[node.name]
        else:
            args = [values[i] for i in node.inputs]
            try:
                with np.errstate(all="ignore"):
                    result = get_op(node.op).forward(args, node.attrs)
            except DataError as exc:
                where = f" (line {node.line})" if node.line else ""
                raise DataError(f"{exc.message}{where}") from None
            values[node_id] = np.asarray(result, dtype=node.type.numpy_dtype)
    return {i: values[i] for i in wanted}
