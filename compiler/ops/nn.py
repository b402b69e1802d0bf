"""Neural-network ops that are not plain elementwise maps: softmax, log_softmax, dropout, one-hot; and the
source ops (input, param, const) that the executors feed."""

from __future__ import annotations

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..types import TensorType, normalize_axes
from .elementwise import same_float_type
from .registry import AttrSpec, OpDef, register

AXIS_LAST = AttrSpec("axis", "axis", -1)


def _normalize_axis(types: list[TensorType], attrs: dict) -> dict:
    if types[0].rank == 0:
        raise ShapeError(f"expected a tensor of rank 1 or more, got {types[0]}")
    (axis,) = normalize_axes(attrs["axis"], types[0].rank, "softmax")
    return {**attrs, "axis": axis}


def softmax_forward(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax_forward(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _softmax_grad(b, n, g):
    axis = n.attrs["axis"]
    y = n.id
    return b.mul(y, b.sub(g, b.sum(b.mul(g, y), axis=axis, keepdims=True)))


def _log_softmax_grad(b, n, g):
    axis = n.attrs["axis"]
    return b.sub(g, b.mul(b.exp(n.id), b.sum(g, axis=axis, keepdims=True)))


def softmax_parts(b, x, axis: int):
    """The pieces softmax and log_softmax are made of: x minus its maximum along ``axis``, that shifted value's
    exponential, and the exponentials' sum (kept as a size-1 axis). Both composites build the same nodes, so CSE
    shares them between a loss's log_softmax and the softmax of its gradient."""
    shifted = b.sub(x, b.max(x, axis=axis, keepdims=True))
    e = b.exp(shifted)
    return shifted, e, b.sum(e, axis=axis, keepdims=True)


def _softmax_decomposition(b, n):
    _, e, total = softmax_parts(b, n.inputs[0], n.attrs["axis"])
    return b.div(e, total)


def _log_softmax_decomposition(b, n):
    shifted, _, total = softmax_parts(b, n.inputs[0], n.attrs["axis"])
    return b.sub(shifted, b.log(total))


register(
    OpDef(
        name="softmax",
        operands=("x",),
        attrs=(AXIS_LAST,),
        normalize=_normalize_axis,
        infer=same_float_type("softmax"),
        forward=lambda a, at: softmax_forward(a[0], at["axis"]),
        grad=lambda b, n, g: [lambda: _softmax_grad(b, n, g)],
        category="nn",
        flops=lambda ts, out, at: 5 * out.numel(),
        formula="e^x / sum(e^x) along axis (computed with the maximum subtracted)",
        shape_rule="same as x",
        decompose=_softmax_decomposition,
    )
)
register(
    OpDef(
        name="log_softmax",
        operands=("x",),
        attrs=(AXIS_LAST,),
        normalize=_normalize_axis,
        infer=same_float_type("log_softmax"),
        forward=lambda a, at: log_softmax_forward(a[0], at["axis"]),
        grad=lambda b, n, g: [lambda: _log_softmax_grad(b, n, g)],
        category="nn",
        flops=lambda ts, out, at: 5 * out.numel(),
        formula="x - log(sum(e^x)) along axis",
        shape_rule="same as x",
        decompose=_log_softmax_decomposition,
    )
)


def _normalize_dropout(types: list[TensorType], attrs: dict) -> dict:
    if not 0.0 <= attrs["p"] < 1.0:
        raise ShapeError(f"dropout: p must be in [0, 1), got {attrs['p']}")
    return attrs


register(
    OpDef(
        name="dropout",
        operands=("x",),
        attrs=(AttrSpec("p", "float", 0.5, doc="probability of dropping a unit"),),
        normalize=_normalize_dropout,
        infer=same_float_type("dropout"),
        forward=lambda a, at: a[0],
        grad=lambda b, n, g: [lambda: g],
        category="nn",
        flops=lambda ts, out, at: 0,
        formula="identity outside training; in training, zero each unit with probability p, scale by 1/(1-p)",
        shape_rule="same as x",
        scalar="{x}",
    )
)


def _running_stat_type(types: list[TensorType], attrs: dict) -> TensorType:
    batch, running = types
    if batch != running:
        raise ShapeError(f"batch statistic {batch} does not match running statistic {running}")
    return running


register(
    OpDef(
        name="running_stat",
        operands=("batch", "running"),
        infer=_running_stat_type,
        forward=lambda a, at: a[1],
        grad=lambda b, n, g: [None, lambda: g],
        category="internal",
        public=False,
        formula="batchnorm's statistic: the running one outside training, the batch one in training",
        shape_rule="same as running",
        scalar="{running}",
    )
)


def _onehot_type(types: list[TensorType], attrs: dict) -> TensorType:
    labels, like = types
    if labels.shape != like.shape[:-1]:
        raise ShapeError(f"labels {labels} do not match scores {like}: expected shape {like.shape[:-1]}")
    return like


def _onehot_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    labels, like = args
    return (labels[..., None] == np.arange(like.shape[-1])).astype(like.dtype)


register(
    OpDef(
        name="onehot",
        operands=("labels", "like"),
        infer=_onehot_type,
        forward=_onehot_forward,
        category="internal",
        public=False,
        shape_only=(1,),
        formula="1 where the last index equals the label, else 0",
        shape_rule="like's shape",
        scalar="(1.0 if {labels} == {i_last} else 0.0)",
        left_aligned=(0,),
        zero_one=True,
    )
)


# ---------------------------------------------------------------- sources


def _source_type(types: list[TensorType], attrs: dict) -> TensorType:
    raise TypeError("source nodes carry their type; they are not inferred")


def _fed(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    raise TypeError("inputs and parameters are fed by the executor")


register(OpDef("input", (), _source_type, _fed, category="source", public=False,
               formula="a value fed at run time", shape_rule="as declared"))
register(OpDef("param", (), _source_type, _fed, category="source", public=False,
               formula="a trained parameter", shape_rule="as declared"))
register(OpDef("const", (), _source_type, lambda a, at: np.asarray(at["value"]), category="source",
               public=False, formula="a constant", shape_rule="the value's shape"))
