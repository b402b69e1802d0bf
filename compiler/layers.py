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


def _features(b: Builder, x: Ref, layer: str) -> tuple[TensorType, int]:
    t: TensorType = b.type(x)
    if t.rank == 0 or not isinstance(t.shape[-1], int):
        raise ShapeError(f"{layer} needs an input whose last dimension is a fixed size, got {t}")
    if not t.is_float:
        raise ShapeError(f"{layer} expects a floating-point input, got {t}")
    return t, t.shape[-1]


def _normalize(b: Builder, x: Ref, mean: Ref, var: Ref, eps: float, gamma: Ref, beta: Ref) -> Ref:
    return b.add(b.mul(b.div(b.sub(x, mean), b.sqrt(b.add(var, eps))), gamma), beta)


def _layernorm(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t, d = _features(b, x, "layernorm")
    last = (t.rank - 1,)
    mean = b.mean(x, axis=last, keepdims=True)
    centered = b.sub(x, mean)
    var = b.mean(b.mul(centered, centered), axis=last, keepdims=True)
    return _normalize(b, x, mean, var, attrs["eps"], new_param("gamma", (d,), {"kind": "ones"}),
                      new_param("beta", (d,), {"kind": "zeros"}))


def _batchnorm(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t, d = _features(b, x, "batchnorm")
    if t.rank < 2:
        raise ShapeError(f"batchnorm needs a batch of feature vectors, got {t}")
    others = tuple(range(t.rank - 1))
    batch_mean = b.mean(x, axis=others)
    centered = b.sub(x, batch_mean)
    batch_var = b.mean(b.mul(centered, centered), axis=others)
    gamma = new_param("gamma", (d,), {"kind": "ones"})
    beta = new_param("beta", (d,), {"kind": "zeros"})
    mean = b.running_stat(batch_mean, new_param("running_mean", (d,), {"kind": "zeros"}))
    var = b.running_stat(batch_var, new_param("running_var", (d,), {"kind": "ones"}))
    return _normalize(b, x, mean, var, attrs["eps"], gamma, beta)


def _embedding(b: Builder, ids: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t: TensorType = b.type(ids)
    if t.is_float or t.is_bool:
        raise ShapeError(f"embedding looks up integer ids, got {t}")
    if t.rank == 0:
        raise ShapeError(f"embedding needs ids with an axis (a batch of them), got {t}")
    if attrs["vocab"] < 1 or attrs["dim"] < 1:
        raise ShapeError(f"embedding: vocab and dim must be positive, got {attrs['vocab']} and {attrs['dim']}")
    weight = new_param("weight", (attrs["vocab"], attrs["dim"]), {"kind": attrs["init"]})
    return b.gather(weight, ids, axis=0)


EPS = AttrSpec("eps", "float", 1e-5, doc="added to the variance")

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
        LayerDef(
            "embedding",
            (
                AttrSpec("vocab", "int", doc="how many ids there are (0 .. vocab-1)"),
                AttrSpec("dim", "int", doc="the length of each id's vector"),
                AttrSpec("init", "choice", "xavier_uniform",
                         choices=tuple(n for n, i in INITIALIZERS.items() if not i.attrs)),
            ),
            _embedding,
            "weight[ids]: one row of weight per id (an id outside 0..vocab-1 gives 0s); the weight's gradient "
            "adds up over repeated ids",
            "weight [vocab, dim] (init)",
        ),
        LayerDef(
            "layernorm",
            (EPS,),
            _layernorm,
            "(x - mean) / sqrt(var + eps) * gamma + beta, mean and var over the last axis of each example",
            "gamma [features] (ones), beta [features] (zeros)",
        ),
        LayerDef(
            "batchnorm",
            (EPS,),
            _batchnorm,
            "(x - mean) / sqrt(var + eps) * gamma + beta, each feature (last axis) normalized with the batch's "
            "mean and variance in training and with the running statistics outside training",
            "gamma, beta [features] (ones, zeros); running_mean, running_var [features] (zeros, ones; not "
            "trained: estimated from the training data after each epoch)",
        ),
    )
}
