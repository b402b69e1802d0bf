"""Constant tensors written in a .model file: ``[1, 2, 3]``, ``[[0.5, -1], [2, 0]]``.

A list of integers is an ``i64`` constant (NumPy's default integer); a list with any float in it is a constant
of the model's float dtype (f32 unless the model says otherwise). Rows must have equal lengths, and every entry
is a number literal: a constant tensor is data, fixed when the model compiles.
"""

from __future__ import annotations

import numpy as np

from gradc.dsl import ast
from gradc.dsl.diagnostics import ModelError

from .limits import check_literal_fits, number_problem

MAX_LITERAL_ELEMENTS = 65536  # larger tables belong in a data file, not in the model's source


def tensor_literal(expr: ast.ListLiteral, float_dtype: str) -> tuple[np.ndarray, str]:
    """The values and dtype of a nested list literal, or a ModelError at the entry that breaks the rules."""
    numbers: list[ast.Number] = []
    shape = _shape(expr, numbers)
    if not numbers:
        raise ModelError("an empty list is not a tensor; write at least one number", expr.loc)
    if len(numbers) > MAX_LITERAL_ELEMENTS:
        raise ModelError(f"a constant tensor of {len(numbers)} numbers is too large to write in a model file "
                         f"(at most {MAX_LITERAL_ELEMENTS}); read it from a data file instead", expr.loc)
    integral = all(isinstance(n.value, int) for n in numbers)
    dtype = "i64" if integral else float_dtype
    for number in numbers:
        if integral and number_problem(number.value, "i64") is not None:
            raise ModelError(f"number {number.text} does not fit a 64-bit integer", number.loc)
        check_literal_fits(number.value, dtype, number.loc, number.text)
    values = np.array([n.value for n in numbers], dtype=np.int64 if integral else np.float64)
    return values.reshape(shape), dtype


def _shape(expr: ast.Expr, numbers: list[ast.Number]) -> tuple[int, ...]:
    """The shape of ``expr``, collecting its numbers in row-major order."""
    if isinstance(expr, ast.Number):
        numbers.append(expr)
        return ()
    if not isinstance(expr, ast.ListLiteral):
        raise ModelError("a constant tensor holds numbers only, as in [[1, 2], [3, 4]]", expr.loc)
    if not expr.items:
        return (0,)
    shapes = [_shape(item, numbers) for item in expr.items]
    for item, shape in zip(expr.items[1:], shapes[1:], strict=True):
        if shape != shapes[0]:
            raise ModelError(f"rows of a constant tensor must have equal shapes: this one is "
                             f"{_show(shape)}, the first is {_show(shapes[0])}", item.loc)
    return (len(expr.items), *shapes[0])


def _show(shape: tuple[int, ...]) -> str:
    return "a number" if not shape else "[" + ", ".join(map(str, shape)) + "]"
