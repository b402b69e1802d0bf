"""Numerically stabilizing rewrites, run before autodiff so the gradients come from the stable forms:

- log(softmax(x)) -> log_softmax(x)
- cross_entropy(softmax(z), y, from_logits=false) -> cross_entropy(z, y, from_logits=true)
- bce(sigmoid(z), y) -> bce_with_logits(z, y)
- log(sigmoid(x)) -> -softplus(-x)

Each also matches behind the casts that the promotion rule inserts (``bce(sigmoid(z), y)`` with ``z: f32`` and
``y: f64`` reads ``cast(sigmoid(z))``); the rewritten op then reads its operand cast the same way.
"""

from __future__ import annotations

from ..builder import Builder, Ref
from ..graph import Graph, Node
from .patterns import producer
from .rewrite import Rule, rewrite


def _operand_as(b: Builder, inner: Node, like: int) -> Ref:
    """The operand of ``inner`` in the dtype of ``like`` (the value the rewritten op read, behind any casts)."""
    return b.cast_to(Ref(inner.inputs[0]), b.type(like).dtype)


def _log_of(b: Builder, node: Node) -> Ref | None:
    g = b.graph
    softmax = producer(g, node.inputs[0], "softmax", through_casts=True)
    if softmax is not None:
        return b.log_softmax(_operand_as(b, softmax, node.inputs[0]), axis=softmax.attrs["axis"])
    sigmoid = producer(g, node.inputs[0], "sigmoid", through_casts=True)
    if sigmoid is not None:
        return b.neg(b.softplus(b.neg(_operand_as(b, sigmoid, node.inputs[0]))))
    return None


def _cross_entropy_of_softmax(b: Builder, node: Node) -> Ref | None:
    softmax = producer(b.graph, node.inputs[0], "softmax", through_casts=True)
    last_axis = softmax is not None and softmax.attrs["axis"] == softmax.type.rank - 1
    if node.attrs["from_logits"] or not last_axis:
        return None
    return b.cross_entropy(_operand_as(b, softmax, node.inputs[0]), Ref(node.inputs[1]),
                           label_smoothing=node.attrs["label_smoothing"], from_logits=True)


def _bce_of_sigmoid(b: Builder, node: Node) -> Ref | None:
    sigmoid = producer(b.graph, node.inputs[0], "sigmoid", through_casts=True)
    if sigmoid is None:
        return None
    return b.bce_with_logits(_operand_as(b, sigmoid, node.inputs[0]), Ref(node.inputs[1]))


REWRITES: dict[str, Rule] = {
    "log": _log_of,
    "cross_entropy": _cross_entropy_of_softmax,
    "bce": _bce_of_sigmoid,
}


def stabilize(graph: Graph) -> Graph:
    return rewrite(graph, REWRITES)
