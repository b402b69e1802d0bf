"""Matrix product with batch dimensions, the weight-gradient contractions (contract_batch, contract_rows), and
the shape ops: transpose, reshape, expand_dims, broadcast_like, shape_size."""

from __future__ import annotations

import math

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..index_maps import IndexMap
from ..types import TensorType, broadcast_shapes, normalize_axes, promote
from .registry import AttrSpec, OpDef, register

# ---------------------------------------------------------------- matmul


def _matmul_type(types: list[TensorType], attrs: dict) -> TensorType:
    a, b = types
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"matmul needs tensors of rank 1 or more, got {a} @ {b} (use * for scalars)")
    if a.is_bool or b.is_bool:
        raise ShapeError(f"matmul multiplies numbers, got {a} @ {b}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.rank == 1 else b.shape[-2]
    if ka != kb:
        raise ShapeError(f"matmul: inner dimensions do not match: {a} @ {b} ({ka} vs {kb})")
    dtype = promote(a.dtype, b.dtype)
    if a.rank == 1 and b.rank == 1:
        return TensorType((), dtype)
    if b.rank == 1:
        return TensorType(a.shape[:-1], dtype)
    if a.rank == 1:
        return TensorType(b.shape[:-2] + b.shape[-1:], dtype)
    batch = broadcast_shapes(TensorType(a.shape[:-2], dtype), TensorType(b.shape[:-2], dtype))
    return TensorType((*batch, a.shape[-2], b.shape[-1]), dtype)


def swap_last(b, x):
    rank = b.type(x).rank
    perm = (*tuple(range(rank - 2)), rank - 1, rank - 2)
    return b.transpose(x, axes=perm)


def _matmul_grad(b, n, g):
    x, w = n.inputs
    rx, rw = b.type(x).rank, b.type(w).rank
    if rx == 1 and rw == 1:
        return [lambda: b.mul(g, w), lambda: b.mul(g, x)]
    if rw == 1:  # (..., n, k) @ (k,) -> (..., n)
        return [
            lambda: b.mul(b.expand_dims(g, axis=-1), w),
            lambda: b.mul(x, b.expand_dims(g, axis=-1)),
        ]
    if rx == 1:  # (k,) @ (..., k, m) -> (..., m)
        return [
            lambda: b.sum(b.mul(w, b.expand_dims(g, axis=-2)), axis=-1),
            lambda: b.mul(b.expand_dims(x, axis=-1), b.expand_dims(g, axis=-2)),
        ]
    if rw == 2 and rx > 2:  # a weight shared by every leading index of x: its gradient is one product over them
        return [lambda: b.matmul(g, swap_last(b, w)), lambda: b.contract_rows(x, g)]
    return [lambda: b.matmul(g, swap_last(b, w)), lambda: b.matmul(swap_last(b, x), g)]


def _inner(a: TensorType) -> int:
    k = a.shape[-1]
    return k if isinstance(k, int) else 1


register(
    OpDef(
        name="matmul",
        operands=("a", "b"),
        infer=_matmul_type,
        forward=lambda args, at: np.asarray(np.matmul(args[0], args[1])),
        grad=_matmul_grad,
        category="linalg",
        flops=lambda ts, out, at: 2 * out.numel() * _inner(ts[0]),
        formula="matrix product (written a @ b); leading dimensions broadcast; 1-D operands as in NumPy",
        shape_rule="[..., n, k] @ [..., k, m] -> [..., n, m]",
        casts=(0, 1),
    )
)

# ---------------------------------------------------------------- transpose


def _normalize_transpose(types: list[TensorType], attrs: dict) -> dict:
    rank = types[0].rank
    axes = attrs["axes"]
    if axes is None:
        return {"axes": tuple(reversed(range(rank)))}
    perm = tuple(a % rank if -rank <= a < rank else a for a in axes)
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"transpose: axes {tuple(axes)} are not a permutation of the {rank} axes of {types[0]}")
    return {"axes": perm}


register(
    OpDef(
        name="transpose",
        operands=("x",),
        attrs=(AttrSpec("axes", "axes", None, doc="none reverses the axes"),),
        normalize=_normalize_transpose,
        infer=lambda ts, at: TensorType(tuple(ts[0].shape[a] for a in at["axes"]), ts[0].dtype),
        forward=lambda args, at: np.transpose(args[0], at["axes"]),
        grad=lambda b, n, g: [lambda: b.transpose(g, axes=tuple(np.argsort(n.attrs["axes"]).tolist()))],
        index_map=lambda n: IndexMap.permutation(n.attrs["axes"]),
        category="shape",
        formula="permute the axes",
        shape_rule="x's dimensions in the order of axes",
    )
)

# ---------------------------------------------------------------- reshape


def _normalize_reshape(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    target = list(attrs["shape"])
    in_symbols = [d for d in t.shape if isinstance(d, str)]
    out_symbols = [d for d in target if isinstance(d, str)]
    static_in = math.prod(d for d in t.shape if isinstance(d, int))
    if len(out_symbols) > 1 or target.count(-1) > 1:
        raise ShapeError(f"reshape: at most one -1 and one batch dimension in shape {attrs['shape']}")
    if any(isinstance(d, int) and (d == 0 or d < -1) for d in target):
        raise ShapeError(f"reshape: dimensions must be positive or -1, got {attrs['shape']}")
    if out_symbols and out_symbols != in_symbols:
        raise ShapeError(f"reshape: shape {attrs['shape']} names {out_symbols[0]}, which {t} does not have")
    known = math.prod(d for d in target if isinstance(d, int) and d != -1)
    if in_symbols and not out_symbols:
        if -1 not in target or known != static_in:
            raise ShapeError(
                f"reshape: {t} to {attrs['shape']} would merge the batch dimension {in_symbols[0]} "
                "with other dimensions; keep it as its own dimension"
            )
        target[target.index(-1)] = in_symbols[0]
    elif -1 in target:
        if known == 0 or static_in % known:
            raise ShapeError(f"reshape: cannot reshape {t} to {attrs['shape']}")
        target[target.index(-1)] = static_in // known
    elif known != static_in:
        raise ShapeError(f"reshape: cannot reshape {t} ({static_in} elements) to {attrs['shape']} ({known})")
    return {"shape": tuple(target)}


register(
    OpDef(
        name="reshape",
        operands=("x",),
        attrs=(AttrSpec("shape", "shape", doc="integers, at most one -1, and the batch dimension"),),
        normalize=_normalize_reshape,
        infer=lambda ts, at: TensorType(at["shape"], ts[0].dtype),
        forward=lambda args, at: np.reshape(args[0], [-1 if isinstance(d, str) else d for d in at["shape"]]),
        grad=lambda b, n, g: [lambda: b.reshape(g, shape=b.type(n.inputs[0]).shape)],
        view=True,
        category="shape",
        formula="same elements, new shape",
        shape_rule="shape, with -1 inferred; the batch dimension must stay a dimension of its own",
    )
)

# ---------------------------------------------------------------- internal shape helpers


def new_axes_attrs(op: str):
    """The ``normalize`` rule of an op that inserts size-1 axes (expand_dims, unsqueeze): the axes, as positions
    in the result (negative ones counted from its end)."""
    def normalize(types: list[TensorType], attrs: dict) -> dict:
        axis = attrs["axis"]
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        return {"axis": normalize_axes(axes, types[0].rank + len(axes), op)}

    return normalize


def new_axes_type(types: list[TensorType], attrs: dict) -> TensorType:
    """x's type with 1 inserted at the result positions ``attrs["axis"]``."""
    dims = iter(types[0].shape)
    rank = types[0].rank + len(attrs["axis"])
    return TensorType(tuple(1 if i in attrs["axis"] else next(dims) for i in range(rank)), types[0].dtype)


register(
    OpDef(
        name="expand_dims",
        operands=("x",),
        attrs=(AttrSpec("axis", "axes"),),
        normalize=new_axes_attrs("expand_dims"),
        infer=new_axes_type,
        forward=lambda args, at: np.expand_dims(args[0], at["axis"]),
        grad=lambda b, n, g: [lambda: b.reshape(g, shape=b.type(n.inputs[0]).shape)],
        index_map=lambda n: IndexMap.dropping(n.type.rank - len(n.attrs["axis"]), n.attrs["axis"]),
        view=True,
        category="shape",
        public=False,
        formula="insert size-1 axes",
        shape_rule="x with 1 inserted at the axes",
    )
)


def _broadcast_like_type(types: list[TensorType], attrs: dict) -> TensorType:
    x, like = types
    if broadcast_shapes(x, TensorType(like.shape, x.dtype)) != like.shape:
        raise ShapeError(f"broadcast_like: {x} does not broadcast to {like}")
    return TensorType(like.shape, x.dtype)


register(
    OpDef(
        name="broadcast_like",
        operands=("x", "like"),
        infer=_broadcast_like_type,
        forward=lambda args, at: np.array(np.broadcast_to(args[0], args[1].shape)),
        grad=lambda b, n, g: [lambda: g, None],
        category="shape",
        public=False,
        shape_only=(1,),
        formula="x broadcast to the shape of like",
        shape_rule="like's shape",
        scalar="{x}",
    )
)


def _shape_size_static(types: list[TensorType], attrs: dict) -> np.ndarray | None:
    t = types[0]
    dims = [t.shape[a] for a in attrs["axis"]]
    if any(isinstance(d, str) for d in dims):
        return None
    return np.asarray(math.prod(dims), dtype=t.numpy_dtype)


register(
    OpDef(
        name="shape_size",
        operands=("x",),
        attrs=(AttrSpec("axis", "axes", None),),
        normalize=lambda ts, at: {"axis": normalize_axes(at["axis"], ts[0].rank, "shape_size")},
        infer=lambda ts, at: TensorType((), ts[0].dtype if ts[0].is_float else "f32"),
        forward=lambda args, at: np.asarray(
            math.prod(args[0].shape[a] for a in at["axis"]),
            dtype=args[0].dtype if np.issubdtype(args[0].dtype, np.floating) else np.float32,
        ),
        category="shape",
        public=False,
        shape_only=(0,),
        static_value=_shape_size_static,
        formula="the number of elements along the axes, as a float",
        shape_rule="scalar",
    )
)

# ---------------------------------------------------------------- contract_batch (internal)


def _contract_batch_type(types: list[TensorType], attrs: dict) -> TensorType:
    a, b = types
    if a.rank < 2 or a.rank != b.rank or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-1] or (
            a.dtype != b.dtype):
        raise ShapeError(f"contract_batch: {a} and {b} must be [..., m, p] and [..., k, p] of one dtype")
    return TensorType((a.shape[-2], b.shape[-2]), a.dtype)


def _contract_batch_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    a, b = args
    return np.einsum("...mp,...kp->mk", a, b, optimize=True).astype(a.dtype)


register(
    OpDef(
        name="contract_batch",
        operands=("a", "b"),
        infer=_contract_batch_type,
        forward=_contract_batch_forward,
        grad=lambda b, n, g: [lambda: b.matmul(g, n.inputs[1]), lambda: b.matmul(swap_last(b, g), n.inputs[0])],
        category="linalg",
        public=False,
        flops=lambda ts, out, at: 2 * ts[0].numel() * (out.shape[1] if isinstance(out.shape[1], int) else 1),
        formula="sum over the leading axes of a @ b^T, [..., m, p] x [..., k, p] -> [m, k]: a weight's gradient "
                "summed over the examples into one result, never one gradient per example",
        shape_rule="[..., m, p] and [..., k, p] -> [m, k]",
    )
)

# ---------------------------------------------------------------- contract_rows (internal)


def _contract_rows_type(types: list[TensorType], attrs: dict) -> TensorType:
    a, b = types
    if a.rank < 1 or a.rank != b.rank or a.shape[:-1] != b.shape[:-1] or a.dtype != b.dtype:
        raise ShapeError(f"contract_rows: {a} and {b} must be [..., m] and [..., n] with the same leading "
                         "dimensions and one dtype")
    return TensorType((a.shape[-1], b.shape[-1]), a.dtype)


def _contract_rows_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    a, b = args
    return np.asarray(a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1]), dtype=a.dtype)


def _contract_rows_flops(types: list[TensorType], out: TensorType, attrs: dict) -> int:
    n = out.shape[1]
    return 2 * types[0].numel() * (n if isinstance(n, int) else 1)


register(
    OpDef(
        name="contract_rows",
        operands=("a", "b"),
        infer=_contract_rows_type,
        forward=_contract_rows_forward,
        grad=lambda b, n, g: [lambda: b.matmul(n.inputs[1], swap_last(b, g)), lambda: b.matmul(n.inputs[0], g)],
        category="linalg",
        public=False,
        flops=_contract_rows_flops,
        formula="a^T b over every row: [..., m] and [..., n] with the same leading dimensions -> [m, n], the sum "
                "over all leading indices r of the outer product a[r]^T b[r]; the gradient of a weight shared by "
                "every step and example (x @ w with x [T, N, k]; a scan's weights) as one matrix product",
        shape_rule="[..., m] and [..., n] -> [m, n]",
    )
)
