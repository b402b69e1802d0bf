"""``scan``: a recurrence as one node whose body is a graph (as JAX's ``lax.scan`` and PyTensor's Scan).

``scan(carries..., sequences..., constants...)`` runs its body once per step t = 0 .. T-1 (T-1 .. 0 with
``reverse``). The body is an ordinary :class:`Graph` whose inputs are, in order, one per carry, one per
sequence (the sequence's slice at step t: the sequences are stacked along axis 0, ``[T, ...]``) and one per
constant (read whole at every step: the weights). Its outputs are, in order, the new carries (each of its
carry's type) and any per-step outputs. The node has one result per body output, stacked along a new
axis 0: ``[T, ...]`` for each carry after every step and for each per-step output; ``result(s, index=k)``
reads result k. With ``final_carries`` the carries' results are their values after the last step only (as
``lax.scan`` returns them), for a scan whose carries' history nothing reads: a gradient's accumulators.
Compiling a scan compiles its body once, whatever T is, and graph size does not grow with T.

The gradient is a reverse scan (backpropagation through time). Its body is the body's vector-Jacobian
product, derived by the ordinary autodiff pass from ``sum(new_carry * (a + g_carry)) + sum(y * g_y)``: given
the gradient ``a`` flowing into the carries from the later steps, the stored carries of the step before and
the step's inputs, it returns the gradients of the carries (the next ``a``) and of the step's sequence slices,
and adds the step's gradients of the constants to accumulators, carries of their own (no per-step copy of
the weights). The forward values it needs that change from step to step (a gate's activation) it reads from
the forward scan, which outputs them at every step as extra results (residuals, as JAX's scan keeps them); it
does not recompute the step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..graph import Graph
from ..types import TensorType
from .registry import AttrSpec, OpDef, register

BODY_ATTRS = (
    AttrSpec("body", "graph", doc="the graph run at every step"),
    AttrSpec("carries", "int", doc="how many operands (first) are carries"),
    AttrSpec("sequences", "int", doc="how many operands (after the carries) are sequences [T, ...]"),
    AttrSpec("length", "int", None, doc="T, the number of steps (from the sequences when there are any)"),
    AttrSpec("reverse", "bool", False, doc="run from step T-1 down to 0 (results stay in step order)"),
    AttrSpec("final_carries", "bool", False, doc="the carries' results are their values after the last step, not "
             "stacked over the steps"),
)


def body_inputs(body: Graph) -> list[int]:
    """The body's input nodes in operand order (carries, sequence slices, constants)."""
    return list(body.inputs().values())


def body_outputs(body: Graph) -> list[int]:
    """The body's output nodes in result order (new carries, then per-step outputs)."""
    return list(body.outputs.values())


def scan_results(attrs: dict[str, Any]) -> list[TensorType]:
    """The types of a scan's results: each body output stacked over the T steps (a carry's only after the last
    step, with ``final_carries``)."""
    body = attrs["body"]
    final = attrs.get("final_carries", False)
    return [body.node(o).type if final and j < attrs["carries"]
            else TensorType((attrs["length"], *body.node(o).type.shape), body.node(o).type.dtype)
            for j, o in enumerate(body_outputs(body))]


def _normalize(types: list[TensorType], attrs: dict[str, Any]) -> dict[str, Any]:
    body, k, m = attrs["body"], attrs["carries"], attrs["sequences"]
    inputs = [body.node(i).type for i in body_inputs(body)]
    outputs = [body.node(o).type for o in body_outputs(body)]
    if len(types) != len(inputs):
        raise ShapeError(f"scan: {len(types)} operands for a body of {len(inputs)} inputs")
    if len(outputs) < k:
        raise ShapeError(f"scan: the body has {len(outputs)} outputs, fewer than its {k} carries")
    lengths = {t.shape[0] for t in types[k:k + m] if t.rank}
    if any(t.rank == 0 for t in types[k:k + m]) or len(lengths) > 1:
        raise ShapeError(f"scan: the sequences {', '.join(map(str, types[k:k + m]))} must share their first "
                         "dimension, the steps")
    length = lengths.pop() if lengths else attrs["length"]
    symbolic = isinstance(length, str) and m > 0  # a sequence's T, bound to a size before a program compiles
    if not symbolic and (not isinstance(length, int) or length < 1):
        raise ShapeError(f"scan: the number of steps must be a fixed size of at least 1, got {length}")
    for j, (have, want) in enumerate(zip(types, inputs, strict=True)):
        slice_type = TensorType(have.shape[1:], have.dtype) if k <= j < k + m else have
        if slice_type != want:
            kind = "carry" if j < k else "sequence step" if j < k + m else "constant"
            raise ShapeError(f"scan: operand {j} ({kind}) is {slice_type}; the body's input {j} is {want}")
    for j in range(k):
        if outputs[j] != inputs[j]:
            raise ShapeError(f"scan: the body turns carry {j} of type {inputs[j]} into {outputs[j]}")
    return {**attrs, "length": length}


def _forward(args: list[np.ndarray], attrs: dict[str, Any]) -> tuple[np.ndarray, ...]:
    from ..interpret import evaluate

    body, k, m, length = attrs["body"], attrs["carries"], attrs["sequences"], attrs["length"]
    names = [body.node(i).name for i in body_inputs(body)]
    outputs = body_outputs(body)
    carries, sequences, constants = list(args[:k]), args[k:k + m], list(args[k + m:])
    stacked: list[np.ndarray] | None = None
    for t in (range(length - 1, -1, -1) if attrs["reverse"] else range(length)):
        feeds = dict(zip(names, [*carries, *(s[t] for s in sequences), *constants], strict=True))
        values = evaluate(body, feeds, {}, outputs)
        step = [values[o] for o in outputs]
        if stacked is None:
            stacked = [np.empty((length, *v.shape), v.dtype) for v in step]
        for j, value in enumerate(step):
            stacked[j][t] = value
        carries = step[:k]
    if attrs.get("final_carries", False):
        stacked[:k] = carries
    return tuple(stacked)


def _flops(types: list[TensorType], out: TensorType, attrs: dict[str, Any]) -> int:
    from .registry import get_op

    body = attrs["body"]
    per_step = sum(get_op(n.op).count_flops([body.node(i).type for i in n.inputs], n.type, n.attrs)
                   for n in body.nodes())
    length = attrs["length"]
    return (length if isinstance(length, int) else 1) * per_step  # per step, while the length is symbolic


def _grad(b, n, grads: list):
    from ..recurrence import reverse_scan

    return reverse_scan(b, n, grads)


register(
    OpDef(
        name="scan",
        operands=("operands",),
        variadic=True,
        attrs=BODY_ATTRS,
        normalize=_normalize,
        infer=lambda ts, at: scan_results(at)[0],
        forward=_forward,
        grad=_grad,
        flops=_flops,
        multi_result=True,
        public=False,
        category="internal",
        formula="the body run once per step, carrying state from step to step; each body output stacked over "
                "the steps (the carries only at the end, with final_carries)",
        shape_rule="carries, sequences [T, ...], constants -> one [T, ...] result per body output",
    )
)
