"""What every printer shows of a node: its label, its attributes, its kind and colour."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import Graph, Node
from ..types import format_type

# The courses' colours: inputs green, outputs (and losses) orange, intermediate values blue.
KIND_COLORS = {
    "input": "#a1d99b",
    "param": "#d9f0d3",
    "constant": "#f0f0f0",
    "intermediate": "#9ecae1",
    "output": "#fdae6b",
    "loss": "#fd8d3c",
    "gradient": "#fdd0a2",
}


def format_value(value: Any) -> str:
    if isinstance(value, Graph):  # a scan's body, printed after the scan
        return f"<{len(value)} nodes>"
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return np.array2string(value.ravel(), separator=",", precision=6).replace(" ", "")
        return f"<array {value.shape}>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "(" + ",".join(f"{k}={format_value(v)}" for k, v in value.items()) + ")"
    if value is None:
        return "none"
    return str(value)


def format_attrs(node: Node) -> str:
    if node.op == "const":
        return format_value(node.attrs["value"])
    if node.op in ("input", "param"):
        init = node.attrs.get("init")
        text = f'"{node.name}"'
        if init:
            args = ",".join(f"{k}={format_value(v)}" for k, v in init.items() if k != "kind")
            text += f" init={init['kind']}" + (f"({args})" if args else "")
        return text
    return ", ".join(f"{k}={format_value(v)}" for k, v in node.attrs.items())


def node_type(node: Node) -> str:
    return format_type(node.type.shape, node.type.dtype)


def interface_names(graph: Graph) -> dict[int, list[str]]:
    """node id -> the interface names it carries (output y, loss L, grad/w)."""
    names: dict[int, list[str]] = {}
    for prefix, table in (("output ", graph.outputs), ("loss ", graph.losses), ("grad/", graph.grads)):
        for name, node_id in table.items():
            names.setdefault(node_id, []).append(prefix + name)
    return names
