"""Using a block: binding its attributes at a call, and the block's statements with the attributes' values in
place of their names (in expressions, layer arguments and parameter shapes), ready to lower like any other.

A block is expanded where it is used, once per use (``repeat=n`` uses it n times in a row, each result the
next use's input); the front end gives each use its own parameters, named after the use.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gradc.dsl import ast
from gradc.dsl.diagnostics import ModelError, did_you_mean

REPEAT = "repeat"  # every block takes it: how many times it is used in a row


@dataclasses.dataclass(frozen=True)
class BlockUse:
    block: ast.BlockDef
    attributes: dict[str, ast.Expr]  # attribute -> its literal value at this use
    repeat: int


def bind_block(block: ast.BlockDef, call: ast.Call, operand_count: int) -> BlockUse:
    """The attributes of one use: positional arguments after the tensor inputs, then keywords, then defaults."""
    attributes = block.attributes
    names = [a.name for a in attributes]
    positional = list(call.args[operand_count:])
    if len(positional) > len(attributes):
        raise ModelError(f"block {block.name} takes at most {len(attributes)} argument(s) after its "
                         f"{operand_count} input(s), got {len(positional)}", positional[len(attributes)].loc)
    values: dict[str, ast.Expr] = dict(zip(names, positional, strict=False))
    repeat = 1
    for kw in call.kwargs:
        if kw.name == REPEAT:
            repeat = _repeat(kw.value)
        elif kw.name not in names:
            raise ModelError(f"unknown argument '{kw.name}' for block {block.name}"
                             f"{did_you_mean(kw.name, [*names, REPEAT])}", kw.loc)
        elif kw.name in values:
            raise ModelError(f"argument '{kw.name}' of block {block.name} is given twice", kw.loc)
        else:
            values[kw.name] = kw.value
    for a in attributes:
        value = values.setdefault(a.name, a.default)
        if not _is_literal(value):
            raise ModelError(f"argument '{a.name}' of block {block.name} must be a literal (a number, true, "
                             "false, none or a list)", value.loc)
    return BlockUse(block, values, repeat)


def _repeat(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Number) and isinstance(expr.value, int) and 1 <= expr.value <= 10_000:
        return expr.value
    raise ModelError("repeat must be an integer from 1 to 10000", expr.loc)


def _is_literal(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.Number):
        return True
    if isinstance(expr, ast.Name):
        return expr.id in ("true", "false", "none")
    if isinstance(expr, ast.ListLiteral):
        return all(_is_literal(i) for i in expr.items)
    return False


def instantiate(node: Any, attributes: dict[str, ast.Expr]) -> Any:
    """``node`` (a statement or expression of a block) with each attribute's name replaced by its value; a
    parameter's shape may name an attribute too (``param w: f32[units, units]``)."""
    if isinstance(node, ast.Name):
        return attributes.get(node.id, node)
    if isinstance(node, ast.TypeSpec):
        return dataclasses.replace(node, dims=tuple(_dim(d, loc, attributes) for d, loc in
                                                    zip(node.dims, node.dim_locs, strict=True)))
    if isinstance(node, tuple):
        return tuple(instantiate(item, attributes) for item in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: instantiate(getattr(node, f.name), attributes) for f in dataclasses.fields(node)
                   if f.name != "loc" and _may_hold_names(getattr(node, f.name))}
        return dataclasses.replace(node, **changes) if changes else node
    return node


def _may_hold_names(value: Any) -> bool:
    return isinstance(value, tuple) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _dim(dim: int | str, loc, attributes: dict[str, ast.Expr]) -> int | str:
    if isinstance(dim, int) or dim not in attributes:
        return dim
    value = attributes[dim]
    if isinstance(value, ast.Number) and isinstance(value.value, int) and value.value > 0:
        return value.value
    raise ModelError(f"dimension '{dim}' must be a positive integer, got {getattr(value, 'text', value)}", loc)
