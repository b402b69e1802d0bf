"""Shape ops a model file calls by name: ``unsqueeze``, ``squeeze``, ``flatten``, ``expand``, ``tile`` and
``stack``.

Where the element positions are an affine function of the result's indices the op is an index map that the
loops reading it compose (``squeeze`` reads index 0 on the removed axes, ``expand`` broadcasts); the others are
composites of such maps and ``reshape`` (a view of memory): ``unsqueeze`` is ``expand_dims``, ``flatten`` a
reshape, ``tile`` a new axis expanded and merged, ``stack`` a concatenation of new axes.
"""

from __future__ import annotations

import math

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..index_maps import AffineExpr, IndexMap
from ..types import TensorType, broadcast_shapes, normalize_axes
from .indexing import take
from .linalg import new_axes_attrs, new_axes_type
from .registry import AttrSpec, OpDef, register


def _as_tuple(axis) -> tuple[int, ...]:
    return (axis,) if isinstance(axis, int) else tuple(axis)


# ---------------------------------------------------------------- unsqueeze


register(
    OpDef(
        name="unsqueeze",
        operands=("x",),
        attrs=(AttrSpec("axis", "axes", doc="where the new axes stand in the result"),),
        normalize=new_axes_attrs("unsqueeze"),
        infer=new_axes_type,
        forward=lambda args, at: np.expand_dims(args[0], at["axis"]),
        grad=lambda b, n, g: [lambda: b.reshape(g, shape=b.type(n.inputs[0]).shape)],
        decompose=lambda b, n: b.expand_dims(n.inputs[0], axis=n.attrs["axis"]),
        category="shape",
        formula="x with new axes of size 1 (as x[:, none])",
        shape_rule="x's shape with 1 inserted at the axes",
    )
)

# ---------------------------------------------------------------- squeeze


def _squeeze_attrs(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    if attrs["axis"] is None:
        axes = tuple(k for k, d in enumerate(t.shape) if d == 1)
    else:
        axes = normalize_axes(_as_tuple(attrs["axis"]), t.rank, "squeeze")
    for k in axes:
        if t.shape[k] != 1:
            raise ShapeError(f"squeeze: axis {k} of {t} has size {t.shape[k]}, not 1")
    return {"axis": axes}


def _squeeze_map(node) -> IndexMap:
    exprs, out = [], 0
    for k in range(node.type.rank + len(node.attrs["axis"])):
        if k in node.attrs["axis"]:
            exprs.append(AffineExpr())
        else:
            exprs.append(AffineExpr.axis(out))
            out += 1
    return IndexMap(tuple(exprs))


register(
    OpDef(
        name="squeeze",
        operands=("x",),
        attrs=(AttrSpec("axis", "axes", None, doc="none removes every axis of size 1"),),
        normalize=_squeeze_attrs,
        infer=lambda ts, at: TensorType(tuple(d for k, d in enumerate(ts[0].shape) if k not in at["axis"]),
                                        ts[0].dtype),
        forward=lambda args, at: np.squeeze(args[0], axis=at["axis"]) if at["axis"] else np.array(args[0]),
        grad=lambda b, n, g: [lambda: b.reshape(g, shape=b.type(n.inputs[0]).shape)],
        index_map=_squeeze_map,
        category="shape",
        formula="x without axes of size 1",
        shape_rule="x's shape without the axes (each of size 1)",
    )
)

# ---------------------------------------------------------------- flatten


def _flatten_attrs(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    start, end = (normalize_axes((a,), t.rank, "flatten")[0] for a in (attrs["start"], attrs["end"]))
    if start > end:
        raise ShapeError(f"flatten: start axis {start} comes after end axis {end} of {t}")
    symbolic = [d for d in t.shape[start:end + 1] if isinstance(d, str)]
    if symbolic and end > start:
        raise ShapeError(f"flatten: cannot merge the batch dimension {symbolic[0]} of {t} with other axes")
    return {"start": start, "end": end}


def _flatten_type(types: list[TensorType], attrs: dict) -> TensorType:
    t, start, end = types[0], attrs["start"], attrs["end"]
    merged = t.shape[start] if start == end else math.prod(t.shape[start:end + 1])
    return TensorType((*t.shape[:start], merged, *t.shape[end + 1:]), t.dtype)


register(
    OpDef(
        name="flatten",
        operands=("x",),
        attrs=(AttrSpec("start", "axis", 1), AttrSpec("end", "axis", -1)),
        normalize=_flatten_attrs,
        infer=_flatten_type,
        forward=lambda args, at: args[0].reshape(
            (*args[0].shape[:at["start"]], -1, *args[0].shape[at["end"] + 1:])),
        grad=lambda b, n, g: [lambda: b.reshape(g, shape=b.type(n.inputs[0]).shape)],
        decompose=lambda b, n: b.reshape(n.inputs[0], shape=n.type.shape),
        category="shape",
        formula="axes start..end merged into one (a view of x's memory)",
        shape_rule="x's shape with the axes start..end replaced by their product",
    )
)

# ---------------------------------------------------------------- expand


def _expand_attrs(types: list[TensorType], attrs: dict) -> dict:
    """The target shape, checked, and the operand's (``source``: the index map needs it)."""
    t, shape = types[0], tuple(attrs["shape"])
    if any(isinstance(d, int) and d < 1 for d in shape):
        raise ShapeError(f"expand: dimensions must be positive, got {list(shape)}")
    if len(shape) < t.rank or broadcast_shapes(t, TensorType(shape, t.dtype)) != shape:
        raise ShapeError(f"expand: {t} does not broadcast to {list(shape)}")
    shift = len(shape) - t.rank
    for k, d in enumerate(shape):
        if isinstance(d, str) and (k < shift or t.shape[k - shift] != d):
            raise ShapeError(f"expand: the batch dimension {d} must come from {t} itself, at the same place")
    return {"shape": shape, "source": tuple(t.shape)}


def _expand_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x, shape = args[0], attrs["shape"]
    shift = len(shape) - x.ndim
    return np.array(np.broadcast_to(x, [x.shape[k - shift] if isinstance(d, str) else d for k, d in enumerate(shape)]))


register(
    OpDef(
        name="expand",
        operands=("x",),
        attrs=(AttrSpec("shape", "shape", doc="the result's shape; x broadcasts to it"),
               AttrSpec("source", "shape", (), doc="set by the compiler: x's shape")),
        normalize=_expand_attrs,
        infer=lambda ts, at: TensorType(at["shape"], ts[0].dtype),
        forward=_expand_forward,
        grad=lambda b, n, g: [lambda: g],  # autodiff sums the gradient back over the broadcast axes
        index_map=lambda n: IndexMap.broadcast(n.attrs["source"], n.type.shape),
        category="shape",
        formula="x broadcast to shape (no copy: loops read x with index 0 on the stretched axes)",
        shape_rule="shape, which x broadcasts to",
    )
)


# ---------------------------------------------------------------- tile


def _tile_attrs(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    reps = (attrs["reps"],) if isinstance(attrs["reps"], int) else tuple(attrs["reps"])
    if len(reps) > t.rank or any(r < 1 for r in reps):
        raise ShapeError(f"tile: reps {list(reps)} must be positive, at most one per axis of {t}")
    reps = (1,) * (t.rank - len(reps)) + reps
    for k, r in enumerate(reps):
        if r > 1 and isinstance(t.shape[k], str):
            raise ShapeError(f"tile: cannot repeat along the batch dimension {t.shape[k]} of {t}")
    return {"reps": reps}


def _tile_decomposition(b, n):
    """Per repeated axis: a new axis before it, expanded to the count, merged with it (a view)."""
    x = n.inputs[0]
    for axis, r in enumerate(n.attrs["reps"]):
        if r == 1:
            continue
        shape = b.type(x).shape
        wide = b.expand(b.expand_dims(x, axis=(axis,)), shape=(*shape[:axis], r, *shape[axis:]))
        x = b.reshape(wide, shape=(*shape[:axis], r * shape[axis], *shape[axis + 1:]))
    return x


def _tile_grad(b, n, g):
    def fold():
        grad = g
        for axis, r in enumerate(n.attrs["reps"]):
            if r == 1:
                continue
            shape = b.type(grad).shape
            split = b.reshape(grad, shape=(*shape[:axis], r, shape[axis] // r, *shape[axis + 1:]))
            grad = b.sum(split, axis=(axis,), keepdims=False)
        return grad

    return [fold]


register(
    OpDef(
        name="tile",
        operands=("x",),
        attrs=(AttrSpec("reps", "axes", doc="repetitions per axis, aligned with the last axes (as NumPy)"),),
        normalize=_tile_attrs,
        infer=lambda ts, at: TensorType(tuple(d * r if r > 1 else d for d, r in zip(ts[0].shape, at["reps"],
                                                                                    strict=True)), ts[0].dtype),
        forward=lambda args, at: np.tile(args[0], at["reps"]),
        grad=_tile_grad,
        decompose=_tile_decomposition,
        category="shape",
        formula="x repeated reps times along each axis (np.tile)",
        shape_rule="x's shape, each axis times its repetitions (not the batch dimension)",
    )
)

# ---------------------------------------------------------------- stack


def _stack_attrs(types: list[TensorType], attrs: dict) -> dict:
    return {"axis": normalize_axes((attrs["axis"],), types[0].rank + 1, "stack")[0]}


def _stack_type(types: list[TensorType], attrs: dict) -> TensorType:
    first = types[0]
    for t in types[1:]:
        if t != first:
            raise ShapeError(f"stack: {first} and {t} differ; stack takes tensors of one shape and dtype")
    if first.is_bool:
        raise ShapeError(f"stack joins numbers, got {first}")
    shape = list(first.shape)
    shape.insert(attrs["axis"], len(types))
    return TensorType(tuple(shape), first.dtype)


def _stack_grad(b, n, g):
    axis = n.attrs["axis"]
    return [lambda k=k: b.reshape(take(b, g, axis, k, 1), shape=b.type(n.inputs[k]).shape)
            for k in range(len(n.inputs))]


register(
    OpDef(
        name="stack",
        operands=("xs",),
        variadic=True,
        attrs=(AttrSpec("axis", "axis", 0),),
        normalize=_stack_attrs,
        infer=_stack_type,
        forward=lambda args, at: np.stack(args, axis=at["axis"]),
        grad=_stack_grad,
        decompose=lambda b, n: b.concat(*(b.expand_dims(x, axis=(n.attrs["axis"],)) for x in n.inputs),
                                        axis=n.attrs["axis"]),
        category="shape",
        formula="tensors of one shape joined along a new axis (a concatenation of new axes)",
        shape_rule="the operands' shape with their count inserted at axis",
    )
)
