"""Common-subexpression elimination: merge nodes with the same op, operands, attributes and type."""

from __future__ import annotations

from ..graph import Graph, Node
from ..ops.registry import get_op


def cse_key(node: Node) -> tuple:
    """What makes two pure nodes equal: op, operands (in any order for a commutative op), attributes, type."""
    inputs = tuple(sorted(node.inputs)) if get_op(node.op).commutative else node.inputs
    return node.op, inputs, node.attr_key(), node.type


def cse(graph: Graph) -> Graph:
    """Keep the first of every set of equal pure nodes and point the others' consumers at it.

    Runs before and after autodiff: after it, the backward pass reuses forward values (the ``2*b`` of
    ``(a + 2*b) * (2*b + c)`` is computed once, and its gradient rule's ``2`` is the same constant).
    """
    g = graph.copy()
    seen: dict[tuple, int] = {}
    for node_id in g.order():
        node = g.node(node_id)
        if node.op in ("input", "param") or not get_op(node.op).pure:
            continue
        first = seen.setdefault(cse_key(node), node_id)
        if first != node_id:
            g.replace_uses(node_id, first)
            g.remove(node_id)
    return g
