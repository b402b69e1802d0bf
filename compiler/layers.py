"""Layers: calls that create their own parameters, then expand into ordinary ops.

A layer's parameters are named ``<statement>.<layer><k>.<role>``: the second dense layer of
``logits = x -> dense(128) -> relu -> dense(10)`` owns ``logits.dense2.weight`` and ``logits.dense2.bias``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradc.dsl.diagnostics import ShapeError

from .builder import Builder, Ref
from .initializers import INITIALIZERS
from .ops.registry import AttrSpec
from .types import TensorType

# new_param(role, shape, init_spec) -> a param node named <statement>.<layer><k>.<role>
NewParam = Callable[[str, tuple[int, ...], dict[str, Any]], Ref]


@dataclass(frozen=True)
class LayerDef:
    name: str
    attrs: tuple[AttrSpec, ...]
    build: Callable[[Builder, Ref, dict[str, Any], NewParam], Ref]
    formula: str
    params: str


def _dense(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t: TensorType = b.type(x)
    if t.rank == 0 or not isinstance(t.shape[-1], int):
        raise ShapeError(f"dense needs an input whose last dimension is a fixed size, got {t}")
    if not t.is_float:
        raise ShapeError(f"dense expects a floating-point input, got {t}")
    weight = new_param("weight", (t.shape[-1], attrs["units"]), {"kind": attrs["init"]})
    y = b.matmul(x, weight)
    if attrs["bias"]:
        y = b.add(y, new_param("bias", (attrs["units"],), {"kind": "zeros"}))
    return y


LAYERS: dict[str, LayerDef] = {
    layer.name: layer
    for layer in (
        LayerDef(
            "dense",
            (
                AttrSpec("units", "int"),
                AttrSpec("init", "choice", "xavier_uniform",
                         choices=tuple(n for n, i in INITIALIZERS.items() if not i.attrs)),
                AttrSpec("bias", "bool", True),
            ),
            _dense,
            "x @ weight + bias",
            "weight [in, units] (init), bias [units] (zeros)",
        ),
    )
}
