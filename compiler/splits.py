"""``a, b = split(x, 2, axis=-1)``: one tensor cut into several along an axis, each part a slice (a view that
loops read through its index map). ``sections`` is how many equal parts, or a list of their lengths."""

from __future__ import annotations

from gradc.dsl import ast
from gradc.dsl.diagnostics import ModelError

from .attributes import bind_keywords
from .ops.registry import AttrSpec
from .types import TensorType

SPLIT_ATTRS = (AttrSpec("sections", "axes", doc="the number of equal parts, or a list of the parts' lengths"),
               AttrSpec("axis", "axis", -1))


def split_parts(call: ast.Call, t: TensorType, batch_symbol: str | None) -> tuple[int, list[tuple[int, int]]]:
    """The axis and each part's (start, length) for ``split`` of a value of type ``t``."""
    attrs = bind_keywords(SPLIT_ATTRS, list(call.args[1:]), call.kwargs, "split", call.func_loc, batch_symbol)
    axis = attrs["axis"]
    if not -t.rank <= axis < t.rank:
        raise ModelError(f"split: axis {axis} is out of range for {t}", call.func_loc)
    axis %= t.rank
    dim = t.shape[axis]
    if isinstance(dim, str):
        raise ModelError(f"split: cannot split the batch dimension {dim} of {t}", call.func_loc)
    sections = attrs["sections"]
    if isinstance(sections, int):
        if sections < 1 or dim % sections:
            raise ModelError(f"split: {dim} elements along axis {axis} of {t} do not make {sections} equal parts",
                             call.func_loc)
        lengths = [dim // sections] * sections
    else:
        lengths = list(sections or ())
        if not lengths or any(n < 1 for n in lengths) or sum(lengths) != dim:
            raise ModelError(f"split: the lengths {lengths} must be positive and add up to {dim}, the size of "
                             f"axis {axis} of {t}", call.func_loc)
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    return axis, list(zip(starts, lengths, strict=True))
