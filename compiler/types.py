"""Tensor types: a dtype and a shape whose dimensions are integers or the one symbolic batch dimension.

Broadcasting follows NumPy, with a symbolic dimension matching only itself or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradc.dsl.diagnostics import ShapeError

Dim = int | str
Shape = tuple[Dim, ...]

FLOAT_DTYPES = ("f32", "f64")
INT_DTYPES = ("i32", "i64")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES)  # the dtypes a .model file declares
BOOL = "bool"  # the result of a comparison (lt, eq, ...), read by where; computed, never declared
NUMPY_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, BOOL: np.bool_}
_RANK = {BOOL: -1, "i32": 0, "i64": 1, "f32": 2, "f64": 3}


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def is_bool(self) -> bool:
        return self.dtype == BOOL

    @property
    def is_scalar(self) -> bool:
        return not self.shape

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numpy_dtype(self) -> type:
        return NUMPY_DTYPES[self.dtype]

    def numel(self, batch: int = 1) -> int:
        """Number of elements with the symbolic dimension set to ``batch``."""
        return math.prod(batch if isinstance(d, str) else d for d in self.shape)  # exact: no int64 overflow

    def __str__(self) -> str:
        return format_type(self.shape, self.dtype)


def format_shape(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]" if shape else ""


def format_type(shape: Shape, dtype: str) -> str:
    return f"{dtype}{format_shape(shape)}"


def promote(a: str, b: str) -> str:
    """NumPy-like promotion: float wins over int, wider wins, and anything over bool."""
    if (a in FLOAT_DTYPES) != (b in FLOAT_DTYPES):
        return a if a in FLOAT_DTYPES else b
    return a if _RANK[a] >= _RANK[b] else b


def broadcast_shapes(*types: TensorType) -> Shape:
    """The broadcast shape of several tensors, or a ShapeError naming the shapes that clash."""
    rank = max((t.rank for t in types), default=0)
    result: list[Dim] = []
    for axis in range(rank):
        dim: Dim = 1
        for t in types:
            offset = axis - (rank - t.rank)
            if offset < 0:
                continue
            d = t.shape[offset]
            if d == 1 or d == dim:
                continue
            if dim == 1:
                dim = d
            else:
                shown = " and ".join(str(t) for t in types)
                raise ShapeError(f"cannot broadcast {shown}: dimension {dim} does not match {d}")
        result.append(dim)
    return tuple(result)


def normalize_axes(axis: int | tuple[int, ...] | None, rank: int, what: str) -> tuple[int, ...]:
    """Turn ``axis=`` (None for all, an int or a tuple; negatives count from the end) into sorted axes."""
    if axis is None:
        return tuple(range(rank))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"{what}: axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis in {axes}")
    return tuple(sorted(out))
