"""Integers and lookups: ``one_hot``, ``argmax`` and ``argmin``.

``one_hot`` is a primitive with a scalar template (1 where the last index equals the label), so it fuses into
the loop that reads it. ``argmax``/``argmin`` are composites of primitives that fuse the same way: the
maximum along the axis, then the smallest position holding it (NumPy's first occurrence), as
``min(where(x == max(x), position, n))``, where ``position`` is the index along the last axis as a number. A
reduction over another axis first moves that axis last (a transpose, which loops read through its map).
"""

from __future__ import annotations

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..index_maps import AffineExpr, Guard, IndexMap, Indirect
from ..types import TensorType, normalize_axes
from .indexing import take
from .registry import AttrSpec, OpDef, register

# ---------------------------------------------------------------- one_hot


def _one_hot_type(types: list[TensorType], attrs: dict) -> TensorType:
    labels = types[0]
    if labels.is_float or labels.is_bool:
        raise ShapeError(f"one_hot expects integer labels, got {labels}")
    if attrs["classes"] < 1:
        raise ShapeError(f"one_hot: classes must be positive, got {attrs['classes']}")
    if attrs["dtype"] not in ("f32", "f64"):
        raise ShapeError(f"one_hot makes f32 or f64, not {attrs['dtype']}")
    return TensorType((*labels.shape, attrs["classes"]), attrs["dtype"])


register(
    OpDef(
        name="one_hot",
        operands=("labels",),
        attrs=(AttrSpec("classes", "int"), AttrSpec("dtype", "dtype", "f32")),
        infer=_one_hot_type,
        forward=lambda args, at: (args[0][..., None] == np.arange(at["classes"])).astype(np.dtype(
            {"f32": np.float32, "f64": np.float64}[at["dtype"]])),
        category="nn",
        formula="1 where the last index equals the label, else 0 (a label outside 0..classes-1 gives a row of 0)",
        shape_rule="labels' shape + [classes]",
        scalar="(1.0 if {labels} == {i_last} else 0.0)",
        left_aligned=(0,),
        zero_one=True,
    )
)

# ---------------------------------------------------------------- position (internal)


register(
    OpDef(
        name="position",
        operands=("like",),
        infer=lambda ts, at: TensorType(ts[0].shape, ts[0].dtype if ts[0].is_float else "f64"),
        forward=lambda args, at: np.broadcast_to(np.arange(args[0].shape[-1]), args[0].shape).astype(
            args[0].dtype if np.issubdtype(args[0].dtype, np.floating) else np.float64),
        category="internal",
        public=False,
        shape_only=(0,),
        formula="the index along the last axis, as a number",
        shape_rule="like's shape",
        scalar="{i_last}",
    )
)

# ---------------------------------------------------------------- argmax, argmin


def _arg_attrs(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    if t.rank == 0:
        raise ShapeError(f"argmax and argmin need an axis to search, got a scalar {t}")
    if t.is_bool:
        raise ShapeError(f"argmax and argmin compare numbers, got {t}")
    (axis,) = normalize_axes((attrs["axis"],), t.rank, "argmax")
    if isinstance(t.shape[axis], str):
        raise ShapeError(f"argmax and argmin: cannot search along the batch dimension {t.shape[axis]} of {t}")
    return {"axis": axis, "keepdims": attrs["keepdims"]}


def _arg_type(types: list[TensorType], attrs: dict) -> TensorType:
    shape = list(types[0].shape)
    if attrs["keepdims"]:
        shape[attrs["axis"]] = 1
    else:
        del shape[attrs["axis"]]
    return TensorType(tuple(shape), "i64")


def _arg_decomposition(largest: bool):
    def build(b, n):
        x, axis = n.inputs[0], n.attrs["axis"]
        t = b.type(x)
        perm = (*(k for k in range(t.rank) if k != axis), axis)
        if axis != t.rank - 1:  # search the last axis of a transpose (read in place)
            x = b.transpose(x, axes=perm)
        if not b.type(x).is_float:
            x = b.cast(x, dtype="f64")
        best = b.max(x, axis=-1, keepdims=True) if largest else b.min(x, axis=-1, keepdims=True)
        count = float(t.shape[axis])
        first = b.min(b.where(b.eq(x, best), b.position(x), count), axis=-1, keepdims=n.attrs["keepdims"])
        if n.attrs["keepdims"] and axis != t.rank - 1:
            first = b.transpose(first, axes=tuple(int(a) for a in np.argsort(perm)))
        return b.cast(first, dtype="i64")

    return build


for _name, _largest, _numpy in (("argmax", True, np.argmax), ("argmin", False, np.argmin)):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs=(AttrSpec("axis", "axis", -1), AttrSpec("keepdims", "bool", False)),
            normalize=_arg_attrs,
            infer=_arg_type,
            forward=lambda args, at, f=_numpy: np.asarray(f(args[0], axis=at["axis"], keepdims=at["keepdims"]),
                                                          dtype=np.int64),
            decompose=_arg_decomposition(_largest),
            category="reduction",
            formula=f"the index of the {'largest' if _largest else 'smallest'} element along the axis (the first "
                    "of ties), as i64",
            shape_rule="x without the axis (kept as 1 with keepdims=true)",
        )
    )

# ---------------------------------------------------------------- gather, scatter_add


def _gather_attrs(types: list[TensorType], attrs: dict) -> dict:
    """The axis, and what the index map needs of the operands' types: the length of x along the axis
    (``size``) and the number of axes of the indices (``depth``)."""
    x, indices = types
    if x.rank == 0:
        raise ShapeError(f"gather needs a tensor to take from, got a scalar {x}")
    if indices.is_float or indices.is_bool:
        raise ShapeError(f"gather expects integer indices, got {indices}")
    if indices.rank == 0:
        raise ShapeError(f"gather: the indices must have an axis, got {indices} (for one index, write x[..., i])")
    (axis,) = normalize_axes((attrs["axis"],), x.rank, "gather")
    if isinstance(x.shape[axis], str):
        raise ShapeError(f"gather: cannot take along the batch dimension {x.shape[axis]} of {x}")
    return {"axis": axis, "size": x.shape[axis], "depth": indices.rank}


def _gather_type(types: list[TensorType], attrs: dict) -> TensorType:
    x, indices, axis = types[0], types[1], attrs["axis"]
    return TensorType((*x.shape[:axis], *indices.shape, *x.shape[axis + 1:]), x.dtype)


def _gather_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x, indices, axis = args[0], args[1], attrs["axis"]
    valid = (indices >= 0) & (indices < x.shape[axis])
    taken = np.take(x, np.where(valid, indices, 0), axis=axis)
    mask = valid.reshape((1,) * axis + valid.shape + (1,) * (x.ndim - axis - 1))
    return np.where(mask, taken, np.zeros((), x.dtype))


def _gather_map(node) -> IndexMap:
    """Output axes: x's before ``axis``, then the indices' axes, then x's after. x's ``axis`` is read at the
    index stored in the indices there, guarded: an index outside x reads 0."""
    axis, depth = node.attrs["axis"], node.attrs["depth"]
    after = node.type.rank - axis - depth
    where = Indirect(node.inputs[1], IndexMap(tuple(AffineExpr.axis(axis + j) for j in range(depth))))
    exprs = (*(AffineExpr.axis(k) for k in range(axis)), where,
             *(AffineExpr.axis(axis + depth + j) for j in range(after)))
    return IndexMap(exprs, (Guard(where, node.attrs["size"]),))


register(
    OpDef(
        name="gather",
        operands=("x", "indices"),
        attrs=(AttrSpec("axis", "axis", 0),
               AttrSpec("size", "int", 0, doc="set by the compiler: x's length along the axis"),
               AttrSpec("depth", "int", 0, doc="set by the compiler: the number of axes of the indices")),
        normalize=_gather_attrs,
        infer=_gather_type,
        forward=_gather_forward,
        grad=lambda b, n, g: [lambda: b.scatter_add(g, n.inputs[1], n.inputs[0], axis=n.attrs["axis"]), None],
        index_map=_gather_map,
        fill=lambda n: 0.0,
        elidable=False,
        category="nn",
        formula="np.take(x, indices, axis): the slices of x at the indices (an index outside x gives 0s); its "
                "gradient adds up over repeated indices",
        shape_rule="x's shape with the axis replaced by the indices' shape",
    )
)


def _scatter_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    g, indices, like = args
    axis = attrs["axis"]
    out = np.zeros(like.shape, dtype=g.dtype)
    moved = np.moveaxis(out, axis, 0)
    grads = np.moveaxis(g.reshape((*g.shape[:axis], -1, *g.shape[axis + indices.ndim:])), axis, 0)
    flat = indices.reshape(-1)
    valid = (flat >= 0) & (flat < like.shape[axis])
    np.add.at(moved, flat[valid], grads[valid])
    return out


register(
    OpDef(
        name="scatter_add",
        operands=("g", "indices", "like"),
        attrs=(AttrSpec("axis", "axis", 0),),
        infer=lambda ts, at: TensorType(ts[2].shape, ts[0].dtype),
        forward=_scatter_forward,
        grad=lambda b, n, g: [lambda: b.gather(g, n.inputs[1], axis=n.attrs["axis"]), None, None],
        category="internal",
        public=False,
        shape_only=(2,),
        formula="zeros like `like`, with each slice of g added at its index along the axis (repeats add up)",
        shape_rule="like's shape",
    )
)

# ---------------------------------------------------------------- cumsum


def _cumsum_attrs(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    if t.rank == 0 or t.is_bool:
        raise ShapeError(f"cumsum needs numbers along an axis, got {t}")
    (axis,) = normalize_axes((attrs["axis"],), t.rank, "cumsum")
    if isinstance(t.shape[axis], str):
        raise ShapeError(f"cumsum: cannot run along the batch dimension {t.shape[axis]} of {t}")
    return {"axis": axis}


def _reversed(b, x, axis: int):
    n = b.type(x).shape[axis]
    return take(b, x, axis, n - 1, n, -1)


def _cumsum_grad(b, n, g):
    """The gradient of a running sum is the running sum from the other end: reversed, summed, reversed (the
    reversals are slices, read in place)."""
    axis = n.attrs["axis"]
    return [lambda: _reversed(b, b.cumsum(_reversed(b, g, axis), axis=axis), axis)]


register(
    OpDef(
        name="cumsum",
        operands=("x",),
        attrs=(AttrSpec("axis", "axis", -1),),
        normalize=_cumsum_attrs,
        infer=lambda ts, at: ts[0],
        forward=lambda args, at: np.cumsum(args[0], axis=at["axis"], dtype=args[0].dtype),
        grad=_cumsum_grad,
        category="reduction",
        formula="the running sum along the axis (np.cumsum)",
        shape_rule="x's shape",
        flops=lambda ts, out, at: out.numel(),
    )
)
