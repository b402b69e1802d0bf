"""Cutting and joining: ``x[...]`` (the ``slice`` op), ``pad`` and ``concat``.

All three only move elements, so each is an index map (``compiler/index_maps.py``) that the schedule composes
into the loops that read it: a slice is ``step * i + start`` per axis (a constant on an axis taken by an
integer), a pad reads ``i - before`` under a guard and its fill value elsewhere, and a concatenation is a
composite, the sum of its operands each padded to the full length (one loop, one guarded read per operand).
None of them exists in memory unless something needs it there.

Their gradients are built from the same pieces: the gradient of a slice pads (a step other than 1 first
spreads the gradient with zeros in between, as a pad of a new axis and a reshape; a negative step reverses),
the gradient of a pad slices, and the gradient of a concatenation slices once per operand.

A symbolic (batch) dimension can only be taken whole: its length is not known until the program runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..graph import Node
from ..index_maps import AffineExpr, IndexMap
from ..types import TensorType
from .registry import AttrSpec, OpDef, register

# ---------------------------------------------------------------- slice


def _slice_type(types: list[TensorType], attrs: dict) -> TensorType:
    t = types[0]
    starts, steps, counts, drop = attrs["starts"], attrs["steps"], attrs["counts"], attrs["drop"]
    if not len(starts) == len(steps) == len(counts) == t.rank:
        raise ShapeError(f"slice: {t} has {t.rank} axes, the slice names {len(starts)}")
    for axis, (start, step, count, dim) in enumerate(zip(starts, steps, counts, t.shape, strict=True)):
        if isinstance(dim, str):
            if (start, step, count) != (0, 1, dim) or axis in drop:
                raise ShapeError(f"slice: the batch dimension {dim} of {t} can only be taken whole (':')")
            continue
        last = start + step * (count - 1)
        if step == 0 or count < 1 or not (0 <= start < dim and 0 <= last < dim):
            raise ShapeError(f"slice: axis {axis} of {t} has no elements {start}, {start + step}, ... "
                             f"({count} of them)")
    return TensorType(tuple(c for k, c in enumerate(counts) if k not in drop), t.dtype)


def _slice_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    index: list[Any] = []
    for axis, (start, step, count) in enumerate(zip(attrs["starts"], attrs["steps"], attrs["counts"], strict=True)):
        if axis in attrs["drop"]:
            index.append(start)
        elif isinstance(count, str):
            index.append(slice(None))
        else:
            stop = start + step * count
            index.append(slice(start, stop if stop >= 0 else None, step))
    return np.array(args[0][tuple(index)])


def _slice_map(node: Node) -> IndexMap:
    exprs, out_axis = [], 0
    for axis, (start, step) in enumerate(zip(node.attrs["starts"], node.attrs["steps"], strict=True)):
        if axis in node.attrs["drop"]:
            exprs.append(AffineExpr((), start))
        else:
            exprs.append(AffineExpr(((out_axis, step),), start))
            out_axis += 1
    return IndexMap(tuple(exprs))


def take(b, x, axis: int, start: int, count: int, step: int = 1):
    """``x`` cut along one axis: ``count`` elements from ``start``, ``step`` apart (the others whole)."""
    t = b.type(x)
    if (start, step, count) == (0, 1, t.shape[axis]):
        return x
    starts = [0] * t.rank
    steps = [1] * t.rank
    counts = list(t.shape)
    starts[axis], steps[axis], counts[axis] = start, step, count
    return b.slice(x, starts=tuple(starts), steps=tuple(steps), counts=tuple(counts), drop=())


def pad_axis(b, x, axis: int, before: int, after: int):
    """``x`` with zeros added along one axis (itself when there is nothing to add)."""
    return x if before == after == 0 else b.pad(x, before=before, after=after, axis=axis, value=0.0)


def _spread(b, g, axis: int, step: int):
    """``g`` with ``step - 1`` zeros after each element along ``axis``: a new axis after it, padded, merged."""
    g = b.expand_dims(g, axis=(axis + 1,))
    g = pad_axis(b, g, axis + 1, 0, step - 1)
    shape = list(b.type(g).shape)
    return b.reshape(g, shape=(*shape[:axis], shape[axis] * step, *shape[axis + 2:]))


def _slice_grad(b, n, g):
    t = b.type(n.inputs[0])
    starts, steps, counts, drop = n.attrs["starts"], n.attrs["steps"], n.attrs["counts"], n.attrs["drop"]

    def unslice():
        grad = b.expand_dims(g, axis=tuple(drop)) if drop else g
        for axis, dim in enumerate(t.shape):
            if isinstance(dim, str):
                continue
            start, step, count = starts[axis], steps[axis], counts[axis]
            if axis in drop:
                step, count = 1, 1
            if step < 0:  # read backwards: reverse, and start from the lowest index read
                grad = take(b, grad, axis, count - 1, count, -1)
                start, step = start + step * (count - 1), -step
            length = count
            if step > 1:
                grad = _spread(b, grad, axis, step)
                length = min(count * step, dim - start)
                grad = take(b, grad, axis, 0, length)
            grad = pad_axis(b, grad, axis, start, dim - start - length)
        return grad

    return [unslice]


register(
    OpDef(
        name="slice",
        operands=("x",),
        attrs=(
            AttrSpec("starts", "axes", doc="the first index read, per axis"),
            AttrSpec("steps", "axes", doc="the distance between indices read, per axis (negative: backwards)"),
            AttrSpec("counts", "shape", doc="how many indices are read, per axis"),
            AttrSpec("drop", "axes", (), doc="axes taken by a single integer index, which the result drops"),
        ),
        infer=_slice_type,
        forward=_slice_forward,
        grad=_slice_grad,
        index_map=_slice_map,
        category="shape",
        public=False,  # written x[...]
        formula="x[a:b:s, i, ...]: NumPy's basic indexing (no copy: loops read x through the slice's map)",
        shape_rule="per axis, the number of indices read; an integer index drops its axis",
    )
)

# ---------------------------------------------------------------- pad


def _normalize_pad(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    axis = attrs["axis"]
    if not -t.rank <= axis < t.rank:
        raise ShapeError(f"pad: axis {axis} is out of range for {t}")
    axis %= t.rank
    if isinstance(t.shape[axis], str):
        raise ShapeError(f"pad: cannot pad the batch dimension {t.shape[axis]} of {t}")
    if attrs["before"] < 0 or attrs["after"] < 0:
        raise ShapeError(f"pad: before and after must be 0 or more, got {attrs['before']} and {attrs['after']}")
    n = t.shape[axis]
    if attrs["mode"] == "reflect" and max(attrs["before"], attrs["after"]) > n - 1:
        raise ShapeError(f"pad: a reflection adds at most {n - 1} elements on each side of axis {axis} of {t} "
                         f"(its length less one), got {attrs['before']} and {attrs['after']}")
    return {**attrs, "axis": axis}


def _pad_type(types: list[TensorType], attrs: dict) -> TensorType:
    t, axis = types[0], attrs["axis"]
    shape = list(t.shape)
    shape[axis] += attrs["before"] + attrs["after"]
    return TensorType(tuple(shape), t.dtype)


def _pad_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x = args[0]
    widths = [(0, 0)] * x.ndim
    widths[attrs["axis"]] = (attrs["before"], attrs["after"])
    if attrs["mode"] == "reflect":
        return np.pad(x, widths, mode="reflect")
    return np.pad(x, widths, constant_values=np.asarray(attrs["value"]).astype(x.dtype))


def _reflect_decomposition(b, n):
    """A reflection is a concatenation of reversed slices (x[b], ..., x[1]; x; x[n-2], ..., x[n-1-a]), so it
    is still one loop of guarded reads."""
    x, axis, before, after = n.inputs[0], n.attrs["axis"], n.attrs["before"], n.attrs["after"]
    length = b.type(x).shape[axis]
    parts = [take(b, x, axis, before, before, -1)] if before else []
    parts.append(x)
    if after:
        parts.append(take(b, x, axis, length - 2, after, -1))
    return parts[0] if len(parts) == 1 else b.concat(*parts, axis=axis)


def _pad_grad(b, n, g):
    axis, before, after = n.attrs["axis"], n.attrs["before"], n.attrs["after"]
    length = b.type(n.inputs[0]).shape[axis]

    def grad():
        inside = take(b, g, axis, before, length)
        if n.attrs["mode"] != "reflect":
            return inside
        # x[j] (1 <= j <= before) was copied to before - j, and x[j] (n-1-after <= j <= n-2) to
        # before + n + (n - 2 - j): those gradients come back reversed, into place
        if before:
            inside = b.add(inside, pad_axis(b, take(b, g, axis, before - 1, before, -1), axis, 1, length - 1 - before))
        if after:
            tail = take(b, g, axis, before + length + after - 1, after, -1)
            inside = b.add(inside, pad_axis(b, tail, axis, length - 1 - after, 1))
        return inside

    return [grad]


def _pad_map(node: Node) -> IndexMap:
    axis, before = node.attrs["axis"], node.attrs["before"]
    size = node.type.shape[axis] - before - node.attrs["after"]
    return IndexMap.shifted(node.type.rank, axis, before, size)


register(
    OpDef(
        name="pad",
        operands=("x",),
        attrs=(
            AttrSpec("before", "int", 0, doc="elements added before the first"),
            AttrSpec("after", "int", 0, doc="elements added after the last"),
            AttrSpec("axis", "axis", -1),
            AttrSpec("value", "float", 0.0, doc="the value of the added elements (constant mode)"),
            AttrSpec("mode", "choice", "constant", choices=("constant", "reflect"),
                     doc="constant, or reflect: x mirrored about its edges, without repeating them (NumPy's)"),
        ),
        normalize=_normalize_pad,
        infer=_pad_type,
        forward=_pad_forward,
        grad=_pad_grad,
        index_map=_pad_map,
        fill=lambda n: n.attrs["value"],
        decompose=_reflect_decomposition,
        decompose_when=lambda n: n.attrs["mode"] == "reflect",
        category="shape",
        formula="x with elements added along an axis: a constant (no copy: loops read x under a guard), or x "
                "reflected about its edges (a concatenation of reversed slices)",
        shape_rule="x's shape, the axis longer by before + after (not the batch dimension)",
    )
)

# ---------------------------------------------------------------- concat


def _concat_axis(types: list[TensorType], attrs: dict) -> dict:
    rank = types[0].rank
    axis = attrs["axis"]
    if not -rank <= axis < rank:
        raise ShapeError(f"concat: axis {axis} is out of range for {types[0]}")
    return {"axis": axis % rank}


def _concat_type(types: list[TensorType], attrs: dict) -> TensorType:
    first, axis = types[0], attrs["axis"]
    if first.is_bool:
        raise ShapeError(f"concat joins numbers, got {first}")
    for t in types[1:]:
        if t.rank != first.rank or t.dtype != first.dtype:
            raise ShapeError(f"concat: {first} and {t} differ in rank or dtype")
        if any(a != b for k, (a, b) in enumerate(zip(first.shape, t.shape, strict=True)) if k != axis):
            raise ShapeError(f"concat: {first} and {t} differ in a dimension other than axis {axis}")
    lengths = [t.shape[axis] for t in types]
    symbolic = next((d for d in lengths if isinstance(d, str)), None)
    if symbolic is not None:
        raise ShapeError(f"concat: cannot join along the batch dimension {symbolic}")
    shape = list(first.shape)
    shape[axis] = sum(lengths)
    return TensorType(tuple(shape), first.dtype)


def _offsets(b, n) -> list[int]:
    lengths = [b.type(x).shape[n.attrs["axis"]] for x in n.inputs]
    return [sum(lengths[:k]) for k in range(len(lengths) + 1)]


def _concat_decomposition(b, n):
    axis, offsets = n.attrs["axis"], _offsets(b, n)
    total = offsets[-1]
    parts = [pad_axis(b, x, axis, offsets[k], total - offsets[k + 1]) for k, x in enumerate(n.inputs)]
    result = parts[0]
    for part in parts[1:]:
        result = b.add(result, part)
    return result


def _concat_grad(b, n, g):
    axis, offsets = n.attrs["axis"], _offsets(b, n)
    return [lambda k=k: take(b, g, axis, offsets[k], offsets[k + 1] - offsets[k]) for k in range(len(n.inputs))]


register(
    OpDef(
        name="concat",
        operands=("xs",),
        variadic=True,
        attrs=(AttrSpec("axis", "axis", -1),),
        normalize=_concat_axis,
        infer=_concat_type,
        forward=lambda args, at: np.concatenate(args, axis=at["axis"]),
        grad=_concat_grad,
        decompose=_concat_decomposition,
        category="shape",
        formula="the operands joined along an axis (one loop: the sum of the operands, each padded)",
        shape_rule="equal shapes but along axis, where the lengths add up (not the batch dimension)",
    )
)
