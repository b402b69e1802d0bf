"""Run a graph node by node with each op's NumPy reference forward: exact by construction (no fusion, no
reordering). The runtime's reference executor and the reference forward of ``scan`` (which runs its body
graph once per step) are this function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from gradc.dsl.diagnostics import DataError

from .graph import Graph
from .ops.registry import get_op


def evaluate(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    wanted: Iterable[int],
) -> dict[int, np.ndarray]:
    """Compute the ``wanted`` nodes (and what they need); inputs must already be checked. A node of an op with
    several results (``scan``) holds a tuple of arrays."""
    wanted = set(wanted)
    needed = graph.upstream(wanted)
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
            op = get_op(node.op)
            args = [values[i] for i in node.inputs]
            try:
                with np.errstate(all="ignore"):
                    result = op.forward(args, node.attrs)
            except DataError as exc:
                where = f" (line {node.line})" if node.line else ""
                raise DataError(f"{exc.message}{where}") from None
            values[node_id] = result if op.multi_result else np.asarray(result, dtype=node.type.numpy_dtype)
    return {i: values[i] for i in wanted}
