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
        axes = attrs["axis"]
        if attrs["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
        else:
            shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
        return TensorType(shape, t.dtype)

    return infer


def keep(b, n, g):
    """The upstream gradient with the reduced axes put back as size-1 axes."""
    if n.attrs["keepdims"] or not n.attrs["axis"]:
        return g
    return b.expand_dims(g, axis=n.attrs["axis"])


def reduction(name: str, forward, grad, formula: str, reduce: str) -> OpDef:
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


def _max_grad(b, n, g):
    # Ties share the gradient equally, so the rule is the same whichever maximum NumPy picks.
    x = n.inputs[0]
    top = n.id if n.attrs["keepdims"] or not n.attrs["axis"] else b.expand_dims(n.id, axis=n.attrs["axis"])
    mask = b.eq(x, top)
    count = b.sum(mask, axis=n.attrs["axis"], keepdims=True)
    return b.mul(keep(b, n, g), b.div(mask, count))


reduction("max", np.max, lambda b, n, g: [lambda: _max_grad(b, n, g)], "maximum over the axes", "max")
