"""``result(x, index=k)``: result k of an op with several results (``multi_result``: a scan's stacked
outputs, attention's output and log-sum-exp, attention's three gradients). The op's forward returns a tuple;
each result is read through one of these nodes, which carries its type."""

from __future__ import annotations

from typing import Any

from ..types import TensorType
from .registry import AttrSpec, OpDef, register


def _result_type(types: list[TensorType], attrs: dict[str, Any]) -> TensorType:
    return attrs["type"]


register(
    OpDef(
        name="result",
        operands=("of",),
        attrs=(AttrSpec("index", "int", doc="which result"), AttrSpec("type", "type", doc="its type")),
        infer=_result_type,
        forward=lambda args, at: args[0][at["index"]],
        grad=None,  # autodiff hands the gradients of an op's results to the op itself
        view=True,
        public=False,
        category="internal",
        formula="result `index` of an op with several results (scan, attention_with_lse, attention_grads)",
        shape_rule="the op's result",
    )
)
