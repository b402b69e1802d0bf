"""Algebraic simplification: x*1, 1*x, x/1, x+0, 0+x, x-0, x^1, -(-x), transposes that keep every axis in place,
and, outside training,
dropout (the identity) and batchnorm's statistics (the running ones).

A rule only fires when the result has exactly the type of the operand it returns, so a ``+ 0`` that
broadcasts a smaller tensor up is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from ..graph import Graph, Node
from .patterns import const_equals, producer, replace_with

# op -> rule(graph, node) returning the node id that can stand for the node, or None
Rule = Callable[[Graph, Node], int | None]


def _identity_operand(identity: float, positions: tuple[int, ...]) -> Rule:
    def rule(g: Graph, node: Node) -> int | None:
        for keep in positions:
            other = node.inputs[1 - keep]
            if const_equals(g, other, identity):
                return node.inputs[keep]
        return None

    return rule


def _double_negation(g: Graph, node: Node) -> int | None:
    inner = producer(g, node.inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


def _identity_transpose(g: Graph, node: Node) -> int | None:
    axes = node.attrs["axes"]
    return node.inputs[0] if tuple(axes) == tuple(range(len(axes))) else None


def _dropout_outside_training(g: Graph, node: Node) -> int | None:
    return node.inputs[0]


def _running_statistic_outside_training(g: Graph, node: Node) -> int | None:
    return node.inputs[1]


RULES: dict[str, Rule] = {
    "mul": _identity_operand(1.0, (0, 1)),
    "add": _identity_operand(0.0, (0, 1)),
    "sub": _identity_operand(0.0, (0,)),
    "div": _identity_operand(1.0, (0,)),
    "pow": _identity_operand(1.0, (0,)),
    "neg": _double_negation,
    "transpose": _identity_transpose,
    "dropout": _dropout_outside_training,
    "running_stat": _running_statistic_outside_training,
}


def simplify(graph: Graph) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for node_id in g.order():
            node = g.node(node_id)
            rule = RULES.get(node.op)
            if rule is None:
                continue
            target = rule(g, node)
            if target is not None and g.node(target).type == node.type and target != node_id:
                replace_with(g, node, target)
                changed = True
    return g
