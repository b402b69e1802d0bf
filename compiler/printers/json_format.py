"""The JSON form: ``{"nodes": [{"id", "op", "kind", "shape", "dtype", "line", "inputs": [ids]}], ...}``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..graph import Graph
from ..types import TensorType


def _jsonable(value: Any) -> Any:
    if isinstance(value, Graph):  # a scan's body
        return to_dict(value, "body")
    if isinstance(value, TensorType):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_dict(graph: Graph, stage: str = "") -> dict[str, Any]:
    nodes = []
    kernel_of = graph.kernel_of()
    for node in graph.nodes():
        entry = {
            "id": node.id,
            "op": node.op,
            "kind": graph.kind(node.id),
            "shape": list(node.type.shape),
            "dtype": node.type.dtype,
            "line": node.line,
            "col": node.col,
            "inputs": list(node.inputs),
            "attrs": _jsonable(node.attrs),
        }
        if node.name is not None:
            entry["name"] = node.name
        if node.origin is not None:
            entry["origin"] = node.origin
        if node.id in kernel_of:
            entry["kernel"] = kernel_of[node.id]
        nodes.append(entry)
    return {
        "model": graph.model_name,
        "stage": stage,
        "batch_dimension": graph.batch_symbol,
        "symbolic_lengths": list(graph.length_symbols),
        "nodes": nodes,
        "outputs": dict(graph.outputs),
        "losses": dict(graph.losses),
        "objective": graph.objective,
        "grads": dict(graph.grads),
        "kernels": [
            {"id": k.id, "kind": k.kind, "nodes": list(k.nodes), "domain": list(k.domain), "stored": list(k.stored)}
            for k in graph.kernels or ()
        ],
    }


def to_json(graph: Graph, stage: str = "") -> str:
    return json.dumps(to_dict(graph, stage), indent=2) + "\n"
