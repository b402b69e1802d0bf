"""Hoisting a scan's accumulators: a sum over the steps that the scan adds up in a carry is computed after it,
over all the steps at once.

A scan's gradient (``recurrence.reverse_scan``) adds each step's share of a weight's gradient into a carry: for
an LSTM, ``dW += g_t^T h_{t-1}`` (a [4H, B] x [B, H] product and a [4H, H] addition every step) and
``db += sum(g_t, axis=0)``. Both are sums over the steps of values the step has anyway, so the scan can output
the step's ``g_t`` (stacked over the steps, a result it often has already: the input projection's gradient reads
it) and the sum is taken after the loop, as one product over every step and example:
``dW = contract_rows(G, H)`` (a [4H, T*B] x [T*B, H] GEMM), ``db = sum(G, axis=(0, 1))``. The loop then does
only the work that depends on the previous step, and the big product runs at the BLAS's best size.

An accumulator is hoisted when its carry's new value is ``carry + term + term ...`` (the carry read nowhere
else), with every term of one of these forms, ``a``, ``b`` and ``x`` values of the step that do not depend on
the carry:

- ``matmul(transpose(a), b)`` with ``a`` [B, m] and ``b`` [B, n]: ``contract_rows(stacked a, stacked b)``;
- ``sum(x, axis)`` (without keepdims): ``sum(stacked x, axis 0 and axis + 1)``.

A step value is stacked as the scan's sequence operand when it is a sequence slice, as the scan's result when
the body already outputs it at every step, else as a new per-step output. Only scans whose carries' results are
their final values (``final_carries``: a gradient's accumulators) are considered: a carry whose history is read
cannot be summed afterwards. Anything else is left in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..builder import Builder, Ref
from ..graph import Graph, Node
from ..ops.scan import body_inputs, body_outputs, scan_results
from .dce import dce
from .patterns import fills_with, producer


@dataclass(frozen=True)
class Term:
    """One term of an accumulator's sum: ``contract_rows(a, b)`` or ``sum(a, axis)`` over the stacked steps."""

    kind: str  # "contract" or "sum"
    values: tuple[int, ...]  # body nodes, stacked over the steps outside
    axis: tuple[int, ...] = ()


def hoist_accumulators(graph: Graph) -> Graph:
    """A copy of ``graph`` with the hoistable accumulators of its scans summed after the scans."""
    g = graph.copy()
    for node in list(g.nodes()):
        if node.op == "scan" and node.attrs["final_carries"]:
            _hoist(g, node)
    return dce(g)


def _hoist(g: Graph, scan: Node) -> None:
    """Replace ``scan`` by a scan without its hoistable accumulators, and their results by sums after it."""
    attrs = scan.attrs
    body, k = attrs["body"], attrs["carries"]
    consumers = [g.node(c) for c in g.consumers(scan.id)]
    if any(c.op != "result" for c in consumers):
        return
    slices = set(body_inputs(body)[k:k + attrs["sequences"]])
    plans = {j: terms for j in range(k) if (terms := _accumulator_terms(body, j, slices)) is not None}
    if not plans:
        return
    new_body, positions = _rebuilt_body(body, plans, k, slices)
    ins, outs = body_inputs(body), body_outputs(body)
    b = Builder(g)
    with b.at(scan.line, scan.col, origin=scan.origin):
        operands = [Ref(i) for j, i in enumerate(scan.inputs) if j not in plans]
        new_scan = b.scan(*operands, body=new_body, carries=k - len(plans), sequences=attrs["sequences"],
                          length=attrs["length"], reverse=attrs["reverse"], final_carries=True)
        new_types = scan_results(g.node(new_scan).attrs)
        stacked = {}  # body node -> its values over the steps, outside

        def steps(value: int) -> Ref:
            if value not in stacked:
                if value in slices:  # a sequence slice: the sequence itself
                    stacked[value] = Ref(scan.inputs[ins.index(value)])
                else:
                    index = positions[value]
                    stacked[value] = b.result(new_scan, index=index, type=new_types[index])
            return stacked[value]

        replacements = {}
        for j, terms in plans.items():
            total = None
            for term in terms:
                if term.kind == "contract":
                    part = b.contract_rows(*(steps(v) for v in term.values))
                else:
                    part = b.sum(steps(term.values[0]), axis=(0, *(a + 1 for a in term.axis)))
                total = part if total is None else b.add(total, part)
            initial = Ref(scan.inputs[j])
            if not fills_with(g, initial, 0.0):
                total = b.add(initial, total)
            dtype = body.node(outs[j]).type.dtype
            replacements[j] = total if b.type(total).dtype == dtype else b.cast_to(total, dtype)
        old_to_new = _result_renumbering(body, new_body, plans)
        for consumer in consumers:
            index = consumer.attrs["index"]
            if index in replacements:
                target = replacements[index]
            else:
                new_index = old_to_new[index]
                target = b.result(new_scan, index=new_index, type=new_types[new_index])
            g.replace_uses(consumer.id, target)
            g.remove(consumer.id)
    g.remove(scan.id)


def _accumulator_terms(body: Graph, j: int, slices: set[int]) -> list[Term] | None:
    """The terms that carry ``j``'s new value adds to it, if every one can be summed after the loop (``slices``:
    the body's sequence-slice inputs, the only inputs a term may stack)."""
    carry, new = body_inputs(body)[j], body_outputs(body)[j]
    if body.consumers(new) or list(body.outputs.values()).count(new) != 1:
        return None  # the new value is read in the step, or is also another result
    chain: set[int] = set()  # the add nodes under the new value
    leaves: list[int] = []  # what they add up
    pending = [(new, None)]
    while pending:
        value, parent = pending.pop()
        node = body.node(value)
        if node.op == "add" and node.type == body.node(new).type and (
                parent is None or body.consumers(value) == [parent]):
            chain.add(value)
            pending += [(i, value) for i in node.inputs]
        else:
            leaves.append(value)
    if leaves.count(carry) != 1 or set(body.consumers(carry)) - chain:
        return None
    carry_dependents = body.downstream([carry])
    inputs = set(body_inputs(body))
    terms = []
    for leaf in leaves:
        if leaf == carry:
            continue
        term = _term(body, leaf)
        if term is None or any(v in carry_dependents or (v in inputs and v not in slices)
                               for v in term.values):
            return None
        terms.append(term)
    return terms or None


def _term(body: Graph, value: int) -> Term | None:
    node = body.node(value)
    if node.op == "matmul":
        left, right = node.inputs
        transposed = producer(body, left, "transpose")
        if (transposed is not None and transposed.attrs["axes"] == (1, 0)
                and body.node(transposed.inputs[0]).type.rank == 2 and body.node(right).type.rank == 2):
            return Term("contract", (transposed.inputs[0], right))
        return None
    if node.op == "sum" and not node.attrs["keepdims"]:
        return Term("sum", (node.inputs[0],), tuple(node.attrs["axis"]))
    return None


def _rebuilt_body(body: Graph, plans: dict[int, list[Term]], k: int, slices: set[int],
                  ) -> tuple[Graph, dict[int, int]]:
    """The body without the hoisted carries, outputting every value the terms need at every step; and the
    result index of each such value (sequence slices need none)."""
    new = body.copy()
    ins = body_inputs(body)
    names = list(body.outputs)
    for j in plans:
        del new.outputs[names[j]]
    for terms in plans.values():
        for term in terms:
            for value in term.values:
                if value not in slices and value not in list(new.outputs.values())[k - len(plans):]:
                    new.outputs[f"hoisted{len(names)}_{value}"] = value
    new = dce(new)
    for j in plans:
        new.remove(ins[j])
    carries = k - len(plans)
    positions = {}
    for index, value in enumerate(new.outputs.values()):
        if index >= carries:
            positions.setdefault(value, index)
    return new, positions


def _result_renumbering(body: Graph, new_body: Graph, plans: dict[int, list[Term]]) -> dict[int, int]:
    """Old result index -> new result index, for the results that stay."""
    new_names = list(new_body.outputs)
    return {index: new_names.index(name) for index, name in enumerate(body.outputs) if name in new_names
            and index not in plans}
