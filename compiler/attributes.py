"""Turn literal arguments in the AST (``alpha=0.2``, ``axis=[0, 1]``, ``approximate=true``) into attribute
values, checked against an :class:`AttrSpec`, with located errors."""

from __future__ import annotations

from typing import Any

from gradc.dsl import ast
from gradc.dsl.diagnostics import ModelError, did_you_mean

from .ops.registry import AttrSpec

BOOLEANS = {"true": True, "false": False}


def literal_value(spec: AttrSpec, expr: ast.Expr, owner: str, batch_symbol: str | None) -> Any:
    """The value of ``expr`` as attribute ``spec`` of ``owner`` (an op, layer or initializer name)."""
    converter = _CONVERTERS[spec.kind]
    return converter(spec, expr, owner, batch_symbol)


def _fail(spec: AttrSpec, expr: ast.Expr, owner: str, wanted: str) -> ModelError:
    return ModelError(f"argument '{spec.name}' of {owner} must be {wanted}", expr.loc)


def _float(spec, expr, owner, symbol):
    if isinstance(expr, ast.Number):
        return float(expr.value)
    raise _fail(spec, expr, owner, "a number")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_int(expr: ast.Expr) -> bool:
    return isinstance(expr, ast.Number) and isinstance(expr.value, int)


def _int64(spec: AttrSpec, expr: ast.Number, owner: str) -> int:
    """An integer attribute reaches NumPy and the generated code as a 64-bit integer."""
    if not INT64_MIN <= expr.value <= INT64_MAX:
        raise ModelError(f"argument '{spec.name}' of {owner} is out of range: {expr.text} does not fit a "
                         "64-bit integer", expr.loc)
    return expr.value


def _int(spec, expr, owner, symbol):
    if _is_int(expr):
        return _int64(spec, expr, owner)
    raise _fail(spec, expr, owner, "an integer")


def _bool(spec, expr, owner, symbol):
    if isinstance(expr, ast.Name) and expr.id in BOOLEANS:
        return BOOLEANS[expr.id]
    raise _fail(spec, expr, owner, "true or false")


def _axis(spec, expr, owner, symbol):
    return _int(spec, expr, owner, symbol)


def _axes(spec, expr, owner, symbol):
    if isinstance(expr, ast.Name) and expr.id == "none":
        return None
    if _is_int(expr):
        return _int64(spec, expr, owner)
    if isinstance(expr, ast.ListLiteral) and all(_is_int(i) for i in expr.items):
        return tuple(_int64(spec, i, owner) for i in expr.items)
    raise _fail(spec, expr, owner, "an integer, a list of integers or none")


def _shape(spec, expr, owner, symbol):
    if not isinstance(expr, ast.ListLiteral):
        raise _fail(spec, expr, owner, "a list of dimensions such as [-1, 8, 8]")
    dims: list[int | str] = []
    for item in expr.items:
        if _is_int(item):
            dims.append(_int64(spec, item, owner))
        elif isinstance(item, ast.Name) and item.id == symbol:
            dims.append(item.id)
        elif isinstance(item, ast.Name):
            known = f" (the batch dimension is {symbol})" if symbol else " (this model has no batch dimension)"
            raise ModelError(f"unknown dimension '{item.id}' in {owner}{known}", item.loc)
        else:
            raise _fail(spec, item, owner, "a list of integers and the batch dimension")
    return tuple(dims)


def _choice(spec, expr, owner, symbol):
    if isinstance(expr, ast.Name) and expr.id in spec.choices:
        return expr.id
    word = expr.id if isinstance(expr, ast.Name) else ""
    raise ModelError(
        f"argument '{spec.name}' of {owner} must be one of {', '.join(spec.choices)}"
        f"{did_you_mean(word, spec.choices)}",
        expr.loc,
    )


def _padding(spec, expr, owner, symbol):
    """A window's padding: same, valid, a number or a list of numbers (checked against the image by the op)."""
    if isinstance(expr, ast.Name) and expr.id in ("same", "valid"):
        return expr.id
    if _is_int(expr):
        return _int64(spec, expr, owner)
    if isinstance(expr, ast.ListLiteral) and all(_is_int(i) for i in expr.items):
        return tuple(_int64(spec, i, owner) for i in expr.items)
    raise _fail(spec, expr, owner, "same, valid, a number or a list of numbers")


_CONVERTERS = {
    "float": _float,
    "int": _int,
    "bool": _bool,
    "axis": _axis,
    "axes": _axes,
    "shape": _shape,
    "choice": _choice,
    "padding": _padding,
}


def bind_keywords(
    specs: tuple[AttrSpec, ...],
    positional: list[ast.Expr],
    keywords: tuple[ast.Keyword, ...],
    owner: str,
    owner_loc,
    batch_symbol: str | None,
) -> dict[str, Any]:
    """Match positional and keyword literals to ``specs``, filling defaults; unknown, repeated or missing
    ones are errors."""
    values: dict[str, Any] = {}
    if len(positional) > len(specs):
        extra = positional[len(specs)]
        raise ModelError(f"{owner} takes at most {len(specs)} argument(s) here, got more", extra.loc)
    for spec, expr in zip(specs, positional, strict=False):
        values[spec.name] = literal_value(spec, expr, owner, batch_symbol)
    names = [s.name for s in specs]
    for kw in keywords:
        spec = next((s for s in specs if s.name == kw.name), None)
        if spec is None:
            hint = did_you_mean(kw.name, names)
            accepted = f" (it takes {', '.join(names)})" if names and not hint else ""
            raise ModelError(f"unknown argument '{kw.name}' for {owner}{hint}{accepted}", kw.loc)
        if spec.name in values:
            raise ModelError(f"argument '{kw.name}' of {owner} is given twice", kw.loc)
        values[spec.name] = literal_value(spec, kw.value, owner, batch_symbol)
    for spec in specs:
        if spec.name in values:
            continue
        if spec.required:
            raise ModelError(f"{owner} needs argument '{spec.name}'", owner_loc)
        values[spec.name] = spec.default
    return values
