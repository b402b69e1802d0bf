"""Layers: calls that create their own parameters, then expand into ordinary ops.

A layer's parameters are named ``<statement>.<layer><k>.<role>``: the second dense layer of
``logits = x -> dense(128) -> relu -> dense(10)`` owns ``logits.dense2.weight`` and ``logits.dense2.bias``.
"""

from __future__ import annotations

from typing import Any

from gradc.dsl.diagnostics import ShapeError

from .attention_layers import ATTENTION_LAYERS
from .builder import Builder, Ref
from .initializers import INITIALIZERS
from .layer_def import LayerDef, NewParam
from .ops import get_op
from .ops.registry import AttrSpec
from .recurrent_layers import RECURRENT_LAYERS
from .types import TensorType


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


def _normalized_axes(t: TensorType, axis: Any, layer: str) -> tuple[int, ...]:
    axes = tuple(sorted(a % t.rank for a in ((axis,) if isinstance(axis, int) else axis)))
    if not axes or any(not -t.rank <= a < t.rank for a in ((axis,) if isinstance(axis, int) else axis)):
        raise ShapeError(f"{layer}: axis {axis} is out of range for {t}")
    if any(not isinstance(t.shape[a], int) for a in axes):
        raise ShapeError(f"{layer}: axis {axis} of {t} must have fixed sizes (not the batch dimension)")
    return axes


def _per_axes(b: Builder, param: Ref, t: TensorType, axes: tuple[int, ...]) -> Ref:
    """A parameter over ``axes`` of ``t``, shaped to broadcast against it ([C] -> [C, 1, 1] for axis 1 of NCHW)."""
    view = tuple(t.shape[a] if a in axes else 1 for a in range(axes[0], t.rank))
    return param if view == b.type(param).shape else b.reshape(param, shape=view)


def _layernorm(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t, _ = _features(b, x, "layernorm")
    axes = _normalized_axes(t, attrs["axis"], "layernorm")
    mean = b.mean(x, axis=axes, keepdims=True)
    centered = b.sub(x, mean)
    var = b.mean(b.mul(centered, centered), axis=axes, keepdims=True)
    shape = tuple(t.shape[a] for a in axes)
    gamma = _per_axes(b, new_param("gamma", shape, {"kind": "ones"}), t, axes)
    beta = _per_axes(b, new_param("beta", shape, {"kind": "zeros"}), t, axes)
    return _normalize(b, x, mean, var, attrs["eps"], gamma, beta)


def _batchnorm(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    t, _ = _features(b, x, "batchnorm")
    if t.rank < 2:
        raise ShapeError(f"batchnorm needs a batch of feature vectors, got {t}")
    if not isinstance(attrs["axis"], int):
        raise ShapeError(f"batchnorm: axis is one axis (the features' or channels'), got {attrs['axis']}")
    axes = _normalized_axes(t, attrs["axis"], "batchnorm")
    d = t.shape[axes[0]]
    others = tuple(a for a in range(t.rank) if a not in axes)
    batch_mean = b.mean(x, axis=others)
    centered = b.sub(x, _per_axes(b, batch_mean, t, axes))
    batch_var = b.mean(b.mul(centered, centered), axis=others)
    gamma = new_param("gamma", (d,), {"kind": "ones"})
    beta = new_param("beta", (d,), {"kind": "zeros"})
    mean = b.running_stat(batch_mean, new_param("running_mean", (d,), {"kind": "zeros"}))
    var = b.running_stat(batch_var, new_param("running_var", (d,), {"kind": "ones"}))
    per = lambda v: _per_axes(b, v, t, axes)
    return _normalize(b, x, per(mean), per(var), attrs["eps"], per(gamma), per(beta))


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
INIT_CHOICES = tuple(n for n, i in INITIALIZERS.items() if not i.attrs)


def _conv_weight(layer: str, t: TensorType, attrs: dict[str, Any], spatial: int, transposed: bool,
                 new_param: NewParam) -> Ref:
    if t.rank != spatial + 2 or any(not isinstance(d, int) for d in t.shape[1:]) or not t.is_float:
        axes = "[N, C, L]" if spatial == 1 else "[N, C, H, W]"
        raise ShapeError(f"{layer} needs a float input {axes} of fixed size but the batch, got {t}")
    kernel = attrs["kernel"]
    kernel = (kernel,) * spatial if isinstance(kernel, int) else tuple(kernel)
    groups, filters, channels = attrs["groups"], attrs["filters"], t.shape[1]
    if len(kernel) != spatial or min(kernel) < 1 or filters < 1 or groups < 1:
        raise ShapeError(f"{layer}: filters, groups and a kernel of {spatial} size(s) must be positive, got "
                         f"filters={filters}, kernel={attrs['kernel']}, groups={groups}")
    if channels % groups or filters % groups:
        raise ShapeError(f"{layer}: groups={groups} must divide the input channels ({channels}) and filters "
                         f"({filters}) of input {t}")
    shape = (channels, filters // groups) if transposed else (filters, channels // groups)
    return new_param("weight", (*shape, *kernel), {"kind": attrs["init"], "layout": "conv"})


def _conv_layer(op: str, spatial: int, transposed: bool = False):
    def build(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
        t: TensorType = b.type(x)
        weight = _conv_weight(op, t, attrs, spatial, transposed, new_param)
        options = {k: v for k, v in attrs.items() if k not in ("filters", "kernel", "init", "bias")}
        y = b.emit(op, x, weight, **options)
        if attrs["bias"]:
            bias = new_param("bias", (attrs["filters"],), {"kind": "zeros"})
            y = b.add(y, b.expand_dims(bias, axis=tuple(range(1, spatial + 1))))
        return y
    return build


def _conv_attrs(transposed: bool = False) -> tuple[AttrSpec, ...]:
    op = get_op("conv_transpose2d" if transposed else "conv2d")
    return (AttrSpec("filters", "int", doc="output channels"),
            AttrSpec("kernel", "axes", doc="a number or [height, width]"),
            *op.attrs,
            AttrSpec("init", "choice", "he_uniform", choices=INIT_CHOICES,
                     doc="fans as PyTorch counts them: in = C/groups * kernel size"),
            AttrSpec("bias", "bool", True))

LAYERS: dict[str, LayerDef] = {
    layer.name: layer
    for layer in (
        LayerDef(
            "dense",
            (
                AttrSpec("units", "int"),
                AttrSpec("init", "choice", "xavier_uniform", choices=INIT_CHOICES),
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
                AttrSpec("init", "choice", "xavier_uniform", choices=INIT_CHOICES),
            ),
            _embedding,
            "weight[ids]: one row of weight per id (an id outside 0..vocab-1 gives 0s); the weight's gradient "
            "adds up over repeated ids",
            "weight [vocab, dim] (init)",
        ),
        LayerDef(
            "conv2d",
            _conv_attrs(),
            _conv_layer("conv2d", 2),
            "conv2d(x, weight, stride, padding, dilation, groups) + bias, per output channel",
            "weight [filters, C/groups, KH, KW] (init), bias [filters] (zeros)",
        ),
        LayerDef(
            "conv1d",
            _conv_attrs(),
            _conv_layer("conv1d", 1),
            "conv1d(x, weight, stride, padding, dilation, groups) + bias, per output channel",
            "weight [filters, C/groups, K] (init), bias [filters] (zeros)",
        ),
        LayerDef(
            "conv_transpose2d",
            _conv_attrs(transposed=True),
            _conv_layer("conv_transpose2d", 2, transposed=True),
            "conv_transpose2d(x, weight, stride, padding, output_padding, dilation, groups) + bias",
            "weight [C, filters/groups, KH, KW] (init), bias [filters] (zeros)",
        ),
        LayerDef(
            "layernorm",
            (AttrSpec("axis", "axes", -1, doc="the axes normalized over, each example apart"), EPS),
            _layernorm,
            "(x - mean) / sqrt(var + eps) * gamma + beta, mean and var over the axes (the last by default) of "
            "each example",
            "gamma, beta of the normalized axes' shape (ones, zeros)",
        ),
        LayerDef(
            "batchnorm",
            (AttrSpec("axis", "axis", -1, doc="the features' axis: 1 for the channels of an NCHW image"), EPS),
            _batchnorm,
            "(x - mean) / sqrt(var + eps) * gamma + beta, each feature (axis, the last by default) normalized "
            "with the mean and variance over the batch (and every other axis) in training and with the "
            "running statistics outside training",
            "gamma, beta [features] (ones, zeros); running_mean, running_var [features] (zeros, ones; not "
            "trained: estimated from the training data after each epoch)",
        ),
    )
}
LAYERS.update(RECURRENT_LAYERS)
LAYERS.update(ATTENTION_LAYERS)
