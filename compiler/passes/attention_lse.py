"""``attention-lse``: in a training graph, attention's forward kernel also writes each query's log-sum-exp,
which its gradient needs (FlashAttention keeps it from the forward pass the same way), instead of a second
pass over the keys recomputing it.

Autodiff gives attention's gradient an ``attention_lse(q, k, mask)`` node (the gradient rule cannot reach
into the forward node). After CSE, each ``attention`` with an ``attention_lse`` of the same queries, keys,
mask and attributes becomes one ``attention_with_lse`` node whose two results replace both.
"""

from __future__ import annotations

from ..builder import Builder, Ref
from ..graph import Graph, Node
from ..ops.attention import with_lse_types


def _is_zero(graph: Graph, value: int) -> bool:
    node = graph.node(value)
    return node.op == "const" and node.type.rank == 0 and float(node.attrs["value"]) == 0.0


def _mask_matches(graph: Graph, forward: Node, lse: Node) -> bool:
    """The lse's mask is the forward's, or a zero constant where the forward has none."""
    mask = lse.inputs[2]
    return forward.inputs[3] == mask if len(forward.inputs) >= 4 else _is_zero(graph, mask)


def fuse_attention_lse(graph: Graph) -> Graph:
    g = graph.copy()
    b = Builder(g)
    lses = [g.node(n) for n in g.order() if g.node(n).op == "attention_lse"]
    for forward_id in [n for n in g.order() if g.node(n).op == "attention"]:
        forward = g.node(forward_id)
        same = {"causal": forward.attrs["causal"], "scale": forward.attrs["scale"]}
        match = next((n for n in lses if n.id in g and n.inputs[:2] == forward.inputs[:2]
                      and {a: n.attrs[a] for a in same} == same and _mask_matches(g, forward, n)), None)
        if match is None:
            continue
        operands = [Ref(i) for i in forward.inputs]
        if len(operands) == 3:
            operands.append(Ref(match.inputs[2]))
        with b.at(forward.line, forward.col, origin=forward.origin):
            fused = b.attention_with_lse(*operands, **forward.attrs)
            out, lse = (b.result(fused, index=j, type=t)
                        for j, t in enumerate(with_lse_types([g.node(i).type for i in operands])))
        g.replace_uses(forward_id, out)
        g.replace_uses(match.id, lse)
        g.remove(forward_id)
        g.remove(match.id)
    return g
