"""Reverse-mode automatic differentiation as a graph transformation.

Backprop is dynamic programming over the DAG: visiting nodes in reverse topological order, the gradient
of a node is the sum of the contributions of every consumer (every path to the objective), and the
node's gradient rule turns it into contributions for its operands. The gradient nodes are added to the
same graph, so the passes that run afterwards (CSE above all) let the backward pass reuse forward values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from .builder import Builder, Ref
from .graph import SOURCE_OPS, Graph
from .ops.registry import get_op


def autodiff(graph: Graph) -> Graph:
    """Add ``grad/<name>`` for every parameter and floating-point input, of the graph's objective."""
    g = graph.copy()
    if g.objective is None:
        return g
    b = Builder(g)
    objective = g.node(g.objective)
    wrt = [n for n in g.nodes() if n.op in ("param", "input") and n.type.is_float]
    relevant = _relevant_nodes(g, g.objective, [n.id for n in wrt])
    forward_order = [i for i in g.order() if i in relevant]

    contributions: dict[int, list[Ref]] = defaultdict(list)
    with b.at(objective.line, objective.col, origin=objective.origin):
        contributions[g.objective].append(b.const(1.0, objective.type.dtype))
    totals: dict[int, Ref] = {}
    result_grads: dict[int, dict[int, Ref]] = defaultdict(dict)  # scan -> result index -> its gradient
    for node_id in reversed(forward_order):
        node = g.node(node_id)
        if get_op(node.op).multi_result:  # its results' gradients arrived through its result nodes
            per_result = result_grads.pop(node_id, None)
            if per_result:
                count = max(per_result) + 1
                with b.at(node.line, node.col, origin=node.origin):
                    _propagate(b, node, [per_result.get(k) for k in range(count)], relevant, contributions)
            continue
        parts = contributions.pop(node_id, None)
        if not parts:
            continue
        with b.at(node.line, node.col, origin=node.origin):
            total = parts[0]
            for part in parts[1:]:
                total = b.add(total, part)
            totals[node_id] = total
            if node.op == "result":
                result_grads[node.inputs[0]][node.attrs["index"]] = total
            elif node.op not in SOURCE_OPS:
                _propagate(b, node, total, relevant, contributions)

    for n in wrt:
        if n.id in totals:
            g.grads[n.name] = totals[n.id]
        else:
            with b.at(n.line, n.col, origin=n.origin):
                g.grads[n.name] = b.broadcast_like(b.const(0.0, n.type.dtype), Ref(n.id))
    return g


def _relevant_nodes(g: Graph, objective: int, leaves: list[int]) -> set[int]:
    """Nodes on some path of float values from a differentiated leaf to the objective: an integer or boolean
    value (an argmax, a comparison) is piecewise constant, so no gradient flows through it."""
    upstream = g.upstream([objective])
    reached = {leaf for leaf in leaves if leaf in upstream}
    for node_id in g.order():
        node = g.node(node_id)
        if node_id in upstream and node.type.is_float and any(i in reached for i in node.inputs):
            reached.add(node_id)
    return reached


def _propagate(b: Builder, node, total: Ref | list[Ref | None], relevant: set[int], contributions) -> None:
    """Hand a node's gradient (a list, one per result, for an op of several results) to its operands."""
    op = get_op(node.op)
    if op.grad is None:
        raise NotImplementedError(f"op {node.op!r} has no gradient rule")
    view = replace(node, id=Ref(node.id), inputs=tuple(Ref(i) for i in node.inputs))
    thunks = op.grad(b, view, total)
    for operand, thunk in zip(node.inputs, thunks, strict=True):
        if thunk is None or operand not in relevant:
            continue
        contributions[operand].append(fit_to(b, thunk(), Ref(operand)))


def fit_to(b: Builder, grad: Ref, target: Ref) -> Ref:
    """Sum a broadcast gradient back to ``target``'s shape, or broadcast a reduced one up to it; a gradient
    always has its variable's dtype."""
    grad = b.cast_to(grad, b.type(target).dtype)
    have, want = b.type(grad), b.type(target)
    if have.shape == want.shape:
        return grad
    lead = have.rank - want.rank
    if lead > 0:
        grad = b.sum(grad, axis=tuple(range(lead)))
        have = b.type(grad)
    ones = tuple(i for i, d in enumerate(want.shape) if d == 1 and i < have.rank and have.shape[i] != 1)
    if ones and have.rank == want.rank:
        grad = b.sum(grad, axis=ones, keepdims=True)
    if b.type(grad).shape != want.shape:
        grad = b.broadcast_like(grad, target)
    return grad
