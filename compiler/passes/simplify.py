"""Algebraic simplification: x*1, 1*x, x/1, x+0, 0+x, x-0, x^1, -(-x), transposes that keep every axis in place,
and, outside training,
dropout (the identity) and batchnorm's statistics (the running ones).

A rule only fires when the result has exactly the type of the operand it returns, so a ``+ 0`` that
broadcasts a smaller tensor up is kept.
"""

from __future__ import annotations

from ..builder import Builder
from ..graph import Graph, Node
from .patterns import const_equals, producer
from .rewrite import Rule, rewrite


def _identity_operand(identity: float, positions: tuple[int, ...]) -> Rule:
    def rule(b: Builder, node: Node) -> int | None:
        for keep in positions:
            other = node.inputs[1 - keep]
            if const_equals(b.graph, other, identity):
                return node.inputs[keep]
        return None

    return rule


def _double_negation(b: Builder, node: Node) -> int | None:
    inner = producer(b.graph, node.inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


def _identity_transpose(b: Builder, node: Node) -> int | None:
    axes = node.attrs["axes"]
    return node.inputs[0] if tuple(axes) == tuple(range(len(axes))) else None


def _dropout_outside_training(b: Builder, node: Node) -> int | None:
    return node.inputs[0]


def _running_statistic_outside_training(b: Builder, node: Node) -> int | None:
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
    return rewrite(graph, RULES)
