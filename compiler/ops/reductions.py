"""Reductions over ``axis=`` (none for every axis, an int or a list), with ``keepdims``."""

from __future__ import annotations

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..types import TensorType, normalize_axes
from .registry import AttrSpec, OpDef, register

REDUCE_ATTRS = (
    AttrSpec("axis", "axes", None, doc="none reduces every axis"),
    AttrSpec("keepdims", "bool", False),
)


def normalize_reduce(types: list[TensorType], attrs: dict) -> dict:
    return {**attrs, "axis": normalize_axes(attrs["axis"], types[0].rank, "reduction")}


def reduced_type(name: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        (t,) = types
        if name != "sum" and not t.is_float:
            raise ShapeError(f"{name} expects a floating-point tensor, got {t}")
        dtype = "i64" if t.is_bool else t.dtype  # sum of a comparison: a count
        axes = attrs["axis"]
        if attrs["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
        else:
            shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
        return TensorType(shape, dtype)

    return infer


def keep(b, n, g):
    """A value of the reduction's shape (its upstream gradient, its result) with the reduced axes put back as
    size-1 axes."""
    if n.attrs["keepdims"] or not n.attrs["axis"]:
        return g
    return b.expand_dims(g, axis=n.attrs["axis"])


def reduction(name: str, forward, grad, formula: str, reduce: str | None, decompose=None) -> OpDef:
    """A reduction that ends a fused loop (``reduce``: its accumulation) or a composite of such (``decompose``)."""
    return register(
        OpDef(
            name=name,
            operands=("x",),
            infer=reduced_type(name),
            forward=lambda a, at: np.asarray(forward(a[0], axis=at["axis"], keepdims=at["keepdims"])),
            grad=grad,
            attrs=REDUCE_ATTRS,
            category="reduction",
            normalize=normalize_reduce,
            flops=lambda ts, out, at: ts[0].numel(),
            formula=formula,
            shape_rule="x without the reduced axes (kept as 1 with keepdims=true)",
            reduce=reduce,
            decompose=decompose,
        )
    )


reduction("sum", np.sum, lambda b, n, g: [lambda: keep(b, n, g)], "sum over the axes", "sum")
reduction(
    "mean",
    np.mean,
    lambda b, n, g: [lambda: b.div(keep(b, n, g), b.shape_size(n.inputs[0], axis=n.attrs["axis"]))],
    "mean over the axes",
    "mean",
)


def _extremum_grad(b, n, g):
    # Ties share the gradient equally, so the rule is the same whichever maximum (minimum) NumPy picks.
    x = n.inputs[0]
    mask = b.eq_mask(x, keep(b, n, n.id))
    count = b.sum(mask, axis=n.attrs["axis"], keepdims=True)
    return b.mul(keep(b, n, g), b.div(mask, count))


reduction("max", np.max, lambda b, n, g: [lambda: _extremum_grad(b, n, g)], "maximum over the axes", "max")
reduction(
    "min",
    np.min,
    lambda b, n, g: [lambda: _extremum_grad(b, n, g)],
    "minimum over the axes",
    None,
    decompose=lambda b, n: b.neg(b.max(b.neg(n.inputs[0]), **n.attrs)),
)


def _logsumexp_forward(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    total = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return (total if keepdims else np.squeeze(total, axis=axis)).astype(x.dtype)


def _logsumexp_decomposition(b, n):
    # log(sum(e^(x - m))) + m with m the maximum: no overflow, and the largest term is exactly e^0
    x, axis = n.inputs[0], n.attrs["axis"]
    shifted = b.sub(x, b.max(x, axis=axis, keepdims=True))
    return b.add(b.log(b.sum(b.exp(shifted), **n.attrs)), b.max(x, **n.attrs))


reduction(
    "logsumexp",
    _logsumexp_forward,
    # d/dx log(sum(e^x)) = e^(x - logsumexp(x)), the softmax over the axes
    lambda b, n, g: [lambda: b.mul(keep(b, n, g), b.exp(b.sub(n.inputs[0], keep(b, n, n.id))))],
    "log(sum(e^x)) over the axes, computed with the maximum subtracted",
    None,
    decompose=_logsumexp_decomposition,
)
