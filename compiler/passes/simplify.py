"""Algebraic simplification: x*1, 1*x, x/1, x+0, 0+x, x-0, x^1 (the 1 or 0 a constant, or one broadcast to a
shape), -(-x), transposes that keep every axis in place,
transposes of transposes and of matrix products, and, outside training,
dropout (the identity) and batchnorm's statistics (the running ones).

A rule only fires when the result has exactly the type of the operand it returns, so a ``+ 0`` that
broadcasts a smaller tensor up is kept.
"""

from __future__ import annotations

from ..builder import Builder, Ref
from ..graph import Graph, Node
from ..ops.linalg import swap_last
from .patterns import fills_with, producer
from .rewrite import Rule, rewrite


def _identity_operand(identity: float, positions: tuple[int, ...]) -> Rule:
    def rule(b: Builder, node: Node) -> int | None:
        for keep in positions:
            other = node.inputs[1 - keep]
            if fills_with(b.graph, other, identity):
                return node.inputs[keep]
        return None

    return rule


def _double_negation(b: Builder, node: Node) -> int | None:
    inner = producer(b.graph, node.inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


def _transpose(b: Builder, node: Node) -> int | None:
    """A transpose that keeps every axis in place is its operand; two transposes in a row are one; the swap of a
    product's last two axes is the product of the swapped operands the other way round, ``(a b)^T = b^T a^T``
    (a weight's gradient through ``x @ w^T`` then comes out of one GEMM, not a GEMM and a strided copy); and
    likewise ``contract_rows(a, b)^T = contract_rows(b, a)``."""
    axes = tuple(node.attrs["axes"])
    if axes == tuple(range(len(axes))):
        return node.inputs[0]
    g = b.graph
    inner = producer(g, node.inputs[0], "transpose")
    if inner is not None:
        return b.transpose(inner.inputs[0], axes=tuple(inner.attrs["axes"][a] for a in axes))
    rows = producer(g, node.inputs[0], "contract_rows")
    if rows is not None and g.consumers(rows.id) == [node.id] and rows.id not in g.roots():
        return b.contract_rows(Ref(rows.inputs[1]), Ref(rows.inputs[0]))  # (a^T b)^T = b^T a
    product = producer(g, node.inputs[0], "matmul")
    rank = len(axes)
    if (product is None or rank < 2 or axes != (*range(rank - 2), rank - 1, rank - 2)
            or g.consumers(product.id) != [node.id] or product.id in g.roots()
            or any(b.type(x).rank != rank for x in product.inputs)):
        return None
    left, right = product.inputs
    return b.matmul(swap_last(b, right), swap_last(b, left))


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
    "transpose": _transpose,
    "dropout": _dropout_outside_training,
    "running_stat": _running_statistic_outside_training,
}


def simplify(graph: Graph) -> Graph:
    return rewrite(graph, RULES)
