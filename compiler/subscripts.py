"""``x[...]`` in a model file: NumPy's basic indexing turned into the attributes of one ``slice`` node.

Each item is an integer (the axis is dropped), a slice ``start:stop:step`` with Python's rules for negative and
missing bounds, ``...`` (as many whole axes as the other items leave) or ``none`` (NumPy's ``None``: a new axis
of size 1, an ``expand_dims`` after the slice); axes left over at the end are taken whole. Indices and bounds
are integer literals. Every mistake is a located error naming the axis and the type.
"""

from __future__ import annotations

from typing import Any

from gradc.dsl import ast
from gradc.dsl.diagnostics import ModelError

from .types import TensorType

NEW_AXIS = ("none", "None")


def _is_new_axis(item: Any) -> bool:
    return isinstance(item, ast.Name) and item.id in NEW_AXIS


def subscript_plan(subscript: ast.Subscript, t: TensorType) -> tuple[dict[str, Any] | None, tuple[int, ...]]:
    """What ``subscript`` applied to a value of type ``t`` emits: the ``slice`` attributes (None when it takes
    everything, ``x[:]`` or ``x[...]``, so no slice node is needed) and the axes of the result that ``none``
    items insert (``x[:, none]`` of a 1-D x: axis 1)."""
    items = _expanded(subscript, t)
    starts, steps, counts, drop, inserted = [], [], [], [], []
    axis = out = 0
    for item in items:
        if _is_new_axis(item):
            inserted.append(out)
            out += 1
            continue
        dim = t.shape[axis]
        if isinstance(item, ast.SliceItem):
            start, step, count = _slice(item, dim, axis, t)
            out += 1
        else:
            start, step, count = _index(item, dim, axis, t), 1, 1
            drop.append(axis)
        starts.append(start)
        steps.append(step)
        counts.append(count)
        axis += 1
    whole = not drop and all((s, k, c) == (0, 1, d) for s, k, c, d in zip(starts, steps, counts, t.shape, strict=True))
    attrs = None if whole else {"starts": tuple(starts), "steps": tuple(steps), "counts": tuple(counts),
                                "drop": tuple(drop)}
    return attrs, tuple(inserted)


def _expanded(subscript: ast.Subscript, t: TensorType) -> list[Any]:
    """One item per axis (and the ``none`` items where they stand): ``...`` and the missing trailing axes become
    whole slices."""
    items = list(subscript.items)
    ellipses = [i for i in items if isinstance(i, ast.EllipsisItem)]
    if len(ellipses) > 1:
        raise ModelError("an index can have only one '...'", ellipses[1].loc)
    explicit = sum(1 for i in items if not isinstance(i, ast.EllipsisItem) and not _is_new_axis(i))
    if explicit > t.rank:
        raise ModelError(f"too many indices: {explicit} for {t}, which has {t.rank} axes", subscript.loc)
    whole = t.rank - explicit
    if ellipses:
        at = items.index(ellipses[0])
        return [*items[:at], *(_whole(ellipses[0].loc) for _ in range(whole)), *items[at + 1:]]
    return [*items, *(_whole(subscript.loc) for _ in range(whole))]


def _whole(loc) -> ast.SliceItem:
    return ast.SliceItem(loc=loc, start=None, stop=None, step=None)


def _integer(expr: ast.Expr, what: str) -> int:
    if isinstance(expr, ast.Number) and isinstance(expr.value, int):
        return expr.value
    raise ModelError(f"{what} must be an integer literal such as 2 or -1", expr.loc)


def _index(expr: ast.Expr, dim: int | str, axis: int, t: TensorType) -> int:
    index = _integer(expr, "an index")
    if isinstance(dim, str):
        raise ModelError(f"cannot index the batch dimension {dim} of {t}: take it whole with ':'", expr.loc)
    if not -dim <= index < dim:
        raise ModelError(f"index {index} is out of range for axis {axis} of {t} (size {dim})", expr.loc)
    return index % dim


def _slice(item: ast.SliceItem, dim: int | str, axis: int, t: TensorType) -> tuple[int, int, int | str]:
    bounds = [None if e is None else _integer(e, "a slice bound") for e in (item.start, item.stop, item.step)]
    if bounds[2] == 0:
        raise ModelError("a slice step cannot be 0", item.step.loc)
    if isinstance(dim, str):
        if bounds[:2] != [None, None] or bounds[2] not in (None, 1):
            raise ModelError(f"cannot slice the batch dimension {dim} of {t}: take it whole with ':'", item.loc)
        return 0, 1, dim
    start, stop, step = slice(*bounds).indices(dim)
    count = len(range(start, stop, step))
    if count == 0:
        raise ModelError(f"the slice selects no elements of axis {axis} of {t} (size {dim})", item.loc)
    return start, step, count
