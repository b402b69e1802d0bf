"""Emit typed nodes into a graph: fill attribute defaults, infer the result type, record the source line.

The front end (AST -> graph), autodiff and the rewrite passes all add nodes through a :class:`Builder`,
so every node is checked by its op's shape rule the same way. ``builder.mul(a, 2.0)`` is shorthand for
``builder.emit("mul", a, 2.0)``; a Python number becomes a constant of the other operands' dtype (a float number
among integer tensors only takes the graph's ``float_dtype``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from .graph import Graph
from .limits import number_problem
from .ops.registry import REGISTRY, get_op
from .types import FLOAT_DTYPES, TensorType


class Ref(int):
    """A node id, kept distinct from a plain Python number in builder calls."""

    __slots__ = ()


class Builder:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.line: int | None = None
        self.col: int | None = None
        self.origin: str | None = None

    @contextmanager
    def at(self, line: int | None, col: int | None, origin: str | None = None) -> Iterator[None]:
        """Attribute the nodes emitted inside the block to a source position (and summary row)."""
        saved = (self.line, self.col, self.origin)
        self.line, self.col = line, col
        if origin is not None:
            self.origin = origin
        try:
            yield
        finally:
            self.line, self.col, self.origin = saved

    def type(self, ref: int) -> TensorType:
        return self.graph.node(ref).type

    def const(self, value: float | int | np.ndarray, dtype: str) -> Ref:
        if isinstance(value, np.ndarray):
            shape = tuple(int(d) for d in value.shape)
            value = value.astype(TensorType(shape, dtype).numpy_dtype)
        else:
            shape = ()
            value = float(value) if dtype in FLOAT_DTYPES else int(value)
            problem = number_problem(value, dtype)
            if problem is not None:
                raise ShapeError(f"the number {value!r} is {problem}")
        return Ref(
            self.graph.add(
                "const", (), TensorType(shape, dtype), {"value": value},
                line=self.line, col=self.col, origin=self.origin,
            )
        )

    def emit(self, op_name: str, *operands: int | float, name: str | None = None, **attrs: Any) -> Ref:
        op = get_op(op_name)
        refs = self._operands(operands)
        in_types = [self.type(r) for r in refs]
        attrs = complete_attrs(op_name, in_types, attrs)
        out_type = op.infer(in_types, attrs)
        refs = [self.cast_to(r, out_type.dtype) if k in op.casts else r for k, r in enumerate(refs)]
        return Ref(
            self.graph.add(
                op_name, refs, out_type, attrs, line=self.line, col=self.col, name=name, origin=self.origin
            )
        )

    def cast_to(self, ref: Ref, dtype: str) -> Ref:
        """``ref`` converted to ``dtype`` (itself when it has that dtype already)."""
        return ref if self.type(ref).dtype == dtype else self.emit("cast", ref, dtype=dtype)

    def _operands(self, operands: tuple[int | float, ...]) -> list[Ref]:
        dtypes = [self.type(o).dtype for o in operands if isinstance(o, Ref)]
        dtype = next((d for d in dtypes if d in FLOAT_DTYPES), None)
        if dtype is None:
            ints_only = all(float(o).is_integer() for o in operands if not isinstance(o, Ref))
            dtype = dtypes[0] if dtypes and ints_only else self.graph.float_dtype
        return [o if isinstance(o, Ref) else self.const(o, dtype) for o in operands]

    def __getattr__(self, op_name: str):
        if op_name in REGISTRY:
            return lambda *operands, **attrs: self.emit(op_name, *operands, **attrs)
        raise AttributeError(op_name)


def complete_attrs(op_name: str, in_types: list[TensorType], attrs: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and canonicalize attributes (e.g. negative axes) with the op's own rule."""
    op = get_op(op_name)
    full = {}
    for spec in op.attrs:
        if spec.name in attrs:
            full[spec.name] = attrs[spec.name]
        elif not spec.required:
            full[spec.name] = spec.default
        else:
            raise TypeError(f"{op_name}: missing attribute {spec.name!r}")
    extra = set(attrs) - set(full)
    if extra:
        raise TypeError(f"{op_name}: unknown attributes {sorted(extra)}")
    if op.normalize is not None:
        full = op.normalize(in_types, full)
    return full

