"""Scans that run their batch in chunks: every example's recurrence is its own, so a target may cut the batch
into chunks and run each chunk's whole loop over the steps on a thread of its own (the cpu target: one
``prange`` over the chunks around the loop), without a barrier between steps.

A scan qualifies when its body works example by example: its carries, sequence slices and outputs have the
batch first, and each body node computes example n's values from example n's values alone (elementwise ops,
``h @ W`` with a weight that is the same for every example, slices, pads, concatenations and reductions that
keep the batch axis) or from constants alone. A node that mixes examples (a sum over the batch, a product that
contracts over it, the batch size read as a number) or whose value depends on where an example sits in the
batch (dropout's random stream, positions) keeps the scan whole. A scan's gradient qualifies once its weights'
gradients, sums over the examples, are taken after it (passes/scan_hoist.py).

Worth it: enough work per example and step (:data:`MIN_STEP_WORK`). A parallel loop costs compile time (the
chunk loop is compiled again through Numba's parfor passes: a few seconds), and a step of a small recurrence
(a few dozen units) takes microseconds, less than waking a thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .graph import Graph, Node
from .ops.registry import get_op
from .ops.scan import body_inputs, body_outputs

MIN_STEP_WORK = 2048  # elements the body computes per example and step, at least
POSITIONAL = ("dropout", "position", "running_stat")  # values that depend on where an example is, not what it is

ROWS, CONSTANT = "rows", "constant"  # example by example (batch first); the same for every example


def runs_in_chunks(scan: Node, batch: str | None) -> bool:
    """Whether ``scan`` can run its batch in chunks, each chunk's steps on a thread of its own, and does enough
    work per example and step to gain by it."""
    if batch is None:
        return False
    attrs = scan.attrs
    body, k, m = attrs["body"], attrs["carries"], attrs["sequences"]
    kinds = _kinds(body, batch, k + m)
    if kinds is None or any(kinds[o] != ROWS for o in body_outputs(body)):
        return False
    return _work(body, kinds) >= MIN_STEP_WORK


def _kinds(body: Graph, batch: str, varying: int) -> dict[int, str] | None:
    """Each body node's kind (ROWS or CONSTANT), or None when a node mixes examples."""
    kinds: dict[int, str] = {}
    for position, node_id in enumerate(body_inputs(body)):
        shape = body.node(node_id).type.shape
        if position < varying:
            if not shape or shape[0] != batch:
                return None
            kinds[node_id] = ROWS
        elif batch in shape:
            return None
        else:
            kinds[node_id] = CONSTANT
    for node in body.nodes():
        if node.op == "input":
            continue
        kind = _kind(body, node, kinds, batch)
        if kind is None:
            return None
        kinds[node.id] = kind
    return kinds


def _kind(body: Graph, node: Node, kinds: dict[int, str], batch: str) -> str | None:
    op = get_op(node.op)
    values = [i for k, i in enumerate(node.inputs) if k not in op.shape_only]
    shapes_read = [i for k, i in enumerate(node.inputs) if k in op.shape_only]
    rows = [i for i in values if kinds[i] == ROWS]
    if not rows and not any(kinds[i] == ROWS for i in shapes_read):
        return None if batch in node.type.shape else CONSTANT
    if node.op in POSITIONAL or not node.type.shape or node.type.shape[0] != batch:
        return None
    constants = [i for i in values if kinds[i] == CONSTANT]
    if any(batch in body.node(i).type.shape for i in constants):
        return None
    rule = RULES.get(node.op)
    if rule is None:
        rule = _elementwise if op.scalar is not None and op.category in ("elementwise", "internal", "shape") \
            else _reduction if op.reduce is not None else None
    if rule is None:
        return None
    return ROWS if rule(body, node, rows, batch) else None


def _elementwise(body: Graph, node: Node, rows: list[int], batch: str) -> bool:
    """Operands with the batch first line up with the result's axes (none broadcasts into the batch axis)."""
    return all(body.node(i).type.rank == node.type.rank for i in rows)


def _reduction(body: Graph, node: Node, rows: list[int], batch: str) -> bool:
    return 0 not in node.attrs["axis"]


def _per_example_product(body: Graph, node: Node, rows: list[int], batch: str) -> bool:
    """``h @ W``: the example's rows times a weight the same for every example."""
    a, _ = node.inputs
    return rows == [a] and body.node(a).type.rank >= 2


def _keeps_first_axis(body: Graph, node: Node, rows: list[int], batch: str) -> bool:
    attrs = node.attrs
    if node.op == "transpose":
        return attrs["axes"][0] == 0
    if node.op == "slice":
        return attrs["starts"][0] == 0 and attrs["steps"][0] == 1 and attrs["counts"][0] == batch \
            and 0 not in attrs["drop"]
    if node.op in ("pad", "concat"):
        return attrs["axis"] != 0 and all(body.node(i).type.rank == node.type.rank for i in rows)
    if node.op == "expand_dims":
        return 0 not in attrs["axis"]
    if node.op == "reshape":
        return body.node(node.inputs[0]).type.shape[:1] == (batch,)
    return False


RULES: dict[str, Callable[[Graph, Node, list[int], str], bool]] = {
    "matmul": _per_example_product,
    "transpose": _keeps_first_axis,
    "slice": _keeps_first_axis,
    "pad": _keeps_first_axis,
    "concat": _keeps_first_axis,
    "expand_dims": _keeps_first_axis,
    "reshape": _keeps_first_axis,
    "broadcast_like": _elementwise,
}


def _work(body: Graph, kinds: dict[int, str]) -> int:
    """Elements the body computes per example and step (its example-by-example values, the batch left out)."""
    return sum(math.prod(d for d in node.type.shape[1:] if isinstance(d, int))
               for node in body.nodes() if kinds[node.id] == ROWS and node.op != "input")
