"""Expansion of composite ops: each node whose op declares a decomposition (softmax, log_softmax, every loss)
is replaced by the primitives it is made of, so the schedule and the targets see only primitives and library
calls (GEMM).

It runs after the optimization pipeline: autodiff has used each composite's own gradient rule (more stable or
cheaper than differentiating the pieces), and the reference executor has the composite's NumPy forward to
check the expanded code against. A decomposition may build other composites (cross_entropy's log_softmax);
those expand in the same pass. The source position of the composite goes with every node it expands to.
"""

from __future__ import annotations

from dataclasses import replace

from ..builder import Builder, Ref
from ..graph import Graph
from ..ops.registry import get_op
from .patterns import replace_with


def expand(graph: Graph) -> Graph:
    g = graph.copy()
    b = Builder(g)
    pending = [i for i in g.order() if get_op(g.node(i).op).composite]
    while pending:
        node = g.node(pending.pop())
        view = replace(node, id=Ref(node.id), inputs=tuple(Ref(i) for i in node.inputs))
        first_new = g.next_id
        with b.at(node.line, node.col, origin=node.origin):
            value = get_op(node.op).decompose(b, view)
        replace_with(g, node, value)
        pending += [i for i in range(first_new, g.next_id) if i in g and get_op(g.node(i).op).composite]
    return g
