"""Small helpers shared by the rewrite passes: matching constants and replacing a node's uses."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node


def const_equals(g: Graph, node_id: int, value: float) -> bool:
    """True when the node is a constant whose every element equals ``value``."""
    node = g.node(node_id)
    if node.op != "const":
        return False
    data = np.asarray(node.attrs["value"])
    return data.size > 0 and bool(np.all(data == value))


def fills_with(g: Graph, node_id: int, value: float) -> bool:
    """True when the node is a constant whose every element equals ``value``, or such a constant broadcast to
    a shape (``broadcast_like``: the zeros a gradient's sum starts from, the ones of a seed)."""
    node = g.node(node_id)
    return const_equals(g, node.inputs[0] if node.op == "broadcast_like" else node_id, value)


def producer(g: Graph, node_id: int, op: str, through_casts: bool = False) -> Node | None:
    """The node that computes ``node_id`` if it is an ``op`` node, else None; ``through_casts`` also finds it
    behind the casts that the promotion rule inserted (``bce(cast(sigmoid(z)), y)``)."""
    node = g.node(node_id)
    while through_casts and node.op == "cast":
        node = g.node(node.inputs[0])
    return node if node.op == op else None


def replace_with(g: Graph, node: Node, replacement: int) -> None:
    """Route the node's consumers (and interface names) to ``replacement`` and drop the node; operands it
    leaves unused are left to dead-code elimination."""
    g.replace_uses(node.id, replacement)
    g.remove(node.id)
