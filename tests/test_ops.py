"""Every public op: its forward against an independent NumPy formula, and its gradient against central
finite differences in float64 (through the whole pipeline: autodiff, then every pass)."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import conv_reference
import numpy as np
import pytest

from gradc.compiler.builder import Builder, Ref
from gradc.compiler.graph import Graph
from gradc.compiler.ops import public_ops
from gradc.compiler.ops.registry import get_op
from gradc.compiler.passes import optimize
from gradc.compiler.passes.expand import expand
from gradc.compiler.types import TensorType
from gradc.runtime.execution.gradcheck import gradcheck
from gradc.runtime.execution.reference import evaluate

sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
erf = np.vectorize(math.erf)


@dataclass
class Case:
    op: str
    operands: dict[str, tuple]  # name -> shape; "labels..." is an i64 input, "cond..." a bool one
    expected: object  # f(*arrays) -> array
    attrs: dict = field(default_factory=dict)
    domain: str = "real"  # real, positive, probability, distribution, wide
    id: str = ""


def attention(q, k, v, mask=None, causal=False, scale=None):
    """Scaled dot-product attention written out: the [T, S] scores, a softmax over the keys."""
    scores = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None:
        scores = scores + mask
    if causal:
        rows, keys = scores.shape[-2:]
        scores = scores + np.triu(np.full((rows, keys), -np.inf), k=1)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def onehot(labels, classes):
    return np.eye(classes)[labels]


def smoothed(labels, classes, s):
    return onehot(labels, classes) * (1 - s) + s / classes


CASES = [
    Case("add", {"a": (3, 4), "b": (4,)}, lambda a, b: a + b),
    Case("add", {"a": (3, 1), "b": (1, 4)}, lambda a, b: a + b, id="outer-broadcast"),
    Case("sub", {"a": (2, 3), "b": (2, 3)}, lambda a, b: a - b),
    Case("mul", {"a": (2, 3), "b": (3,)}, lambda a, b: a * b),
    Case("mul", {"a": (2, 3), "b": ()}, lambda a, b: a * b, id="scalar"),
    Case("div", {"a": (2, 3), "b": (2, 3)}, lambda a, b: a / b, domain="positive"),
    Case("pow", {"a": (2, 3), "b": (2, 3)}, lambda a, b: a**b, domain="positive"),
    Case("neg", {"x": (5,)}, lambda x: -x),
    Case("exp", {"x": (2, 3)}, np.exp),
    Case("log", {"x": (2, 3)}, np.log, domain="positive"),
    Case("sqrt", {"x": (2, 3)}, np.sqrt, domain="positive"),
    Case("abs", {"x": (2, 3)}, np.abs),
    Case("sign", {"x": (2, 3)}, lambda x: (x > 0).astype(float) - (x < 0)),
    Case("log1p", {"x": (2, 3)}, lambda x: np.log(1 + x), domain="positive"),
    Case("expm1", {"x": (2, 3)}, lambda x: np.exp(x) - 1),
    Case("sin", {"x": (2, 3)}, np.sin),
    Case("cos", {"x": (2, 3)}, np.cos),
    Case("erf", {"x": (2, 3)}, lambda x: np.vectorize(math.erf)(x)),
    Case("softsign", {"x": (3, 4)}, lambda x: x / (1 + np.abs(x))),
    Case("clip", {"x": (3, 4)}, lambda x: np.minimum(np.maximum(x, -0.5), 0.7), {"low": -0.5, "high": 0.7}),
    Case("sigmoid", {"x": (3, 4)}, sigmoid),
    Case("tanh", {"x": (3, 4)}, lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))),
    Case("relu", {"x": (3, 4)}, lambda x: x * (x > 0)),
    Case("leaky_relu", {"x": (3, 4)}, lambda x: np.where(x > 0, x, 0.1 * x), {"alpha": 0.1}),
    Case("gelu", {"x": (3, 4)}, lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    Case("gelu", {"x": (3, 4)}, lambda x: x * sigmoid(1.702 * x), {"approximate": True}, id="approximate"),
    Case("softplus", {"x": (3, 4)}, lambda x: np.log(1 + np.exp(2.0 * x)) / 2.0, {"beta": 2.0}),
    Case("swish", {"x": (3, 4)}, lambda x: x * sigmoid(1.5 * x), {"beta": 1.5}),
    Case("elu", {"x": (3, 4)}, lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), {"alpha": 0.5}),
    Case("selu", {"x": (3, 4)},
         lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
    Case("celu", {"x": (3, 4)}, lambda x: np.where(x > 0, x, 2.0 * (np.exp(x / 2.0) - 1)), {"alpha": 2.0}),
    Case("hard_sigmoid", {"x": (4, 5)}, lambda x: np.minimum(np.maximum(x + 3, 0), 6) / 6, domain="wide"),
    Case("hard_swish", {"x": (4, 5)}, lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, domain="wide"),
    Case("mish", {"x": (3, 4)}, lambda x: x * np.tanh(np.log(1 + np.exp(x)))),
    Case("maximum", {"a": (3, 4), "b": (4,)}, lambda a, b: np.where(a > b, a, b)),
    Case("minimum", {"a": (3, 1), "b": (3, 4)}, lambda a, b: np.where(a < b, a, b)),
    Case("lt", {"a": (3, 4), "b": (4,)}, lambda a, b: a < b),
    Case("le", {"a": (3, 4), "b": ()}, lambda a, b: a <= b),
    Case("gt", {"a": (3, 1), "b": (1, 4)}, lambda a, b: a > b),
    Case("ge", {"a": (3, 4), "b": (3, 4)}, lambda a, b: a >= b),
    Case("eq", {"a": (3, 4), "labels": (3, 4)}, lambda a, b: a == b, id="never"),  # float against integer
    Case("eq", {"labels": (3, 4), "labels_b": (4,)}, lambda a, b: a == b, id="integers"),
    Case("where", {"cond": (3, 4), "a": (3, 4), "b": (4,)}, lambda c, a, b: np.where(c, a, b)),
    Case("where", {"cond": (3, 1), "a": (3, 4), "b": ()}, lambda c, a, b: np.where(c, a, b), id="broadcast-cond"),
    Case("sum", {"x": (3, 4)}, lambda x: x.sum(axis=1), {"axis": 1}),
    Case("sum", {"x": (2, 3, 4)}, lambda x: x.sum(), id="all"),
    Case("sum", {"x": (2, 3, 4)}, lambda x: x.sum(axis=(0, 2), keepdims=True), {"axis": (0, 2), "keepdims": True},
         id="keepdims"),
    Case("mean", {"x": (3, 4)}, lambda x: x.mean(axis=0), {"axis": 0}),
    Case("mean", {"x": (3, 4)}, lambda x: x.mean(), id="all"),
    Case("max", {"x": (3, 4)}, lambda x: x.max(axis=1), {"axis": 1}),
    Case("max", {"x": (3, 4)}, lambda x: x.max(), id="all"),
    Case("min", {"x": (3, 4)}, lambda x: x.min(axis=1), {"axis": 1}),
    Case("min", {"x": (2, 3, 4)}, lambda x: x.min(axis=(0, 2), keepdims=True), {"axis": (0, 2), "keepdims": True},
         id="keepdims"),
    Case("logsumexp", {"x": (3, 4)}, lambda x: np.log(np.exp(x).sum(axis=1)), {"axis": 1}),
    Case("logsumexp", {"x": (2, 3, 4)}, lambda x: np.log(np.exp(x).sum(axis=(0, 2), keepdims=True)),
         {"axis": (0, 2), "keepdims": True}, id="keepdims"),
    Case("logsumexp", {"x": (3, 4)}, lambda x: np.log(np.exp(x).sum()), id="all"),
    Case("matmul", {"a": (3, 4), "b": (4, 5)}, lambda a, b: np.einsum("ik,kj->ij", a, b)),
    Case("matmul", {"a": (2, 3, 4), "b": (4, 5)}, lambda a, b: np.einsum("bik,kj->bij", a, b), id="batched"),
    Case("matmul", {"a": (2, 3, 4), "b": (2, 4, 5)}, lambda a, b: np.einsum("bik,bkj->bij", a, b), id="batch-both"),
    Case("matmul", {"a": (2, 3, 4), "b": (1, 4, 5)}, lambda a, b: np.einsum("bik,kj->bij", a, b[0]),
         id="batch-broadcast-right"),
    Case("matmul", {"a": (1, 3, 4), "b": (2, 4, 5)}, lambda a, b: np.einsum("ik,bkj->bij", a[0], b),
         id="batch-broadcast-left"),
    Case("matmul", {"a": (3, 1, 2, 4), "b": (2, 4, 3)}, lambda a, b: np.einsum("pik,qkj->pqij", a[:, 0], b),
         id="batch-broadcast-both"),
    Case("matmul", {"a": (3, 4), "b": (4,)}, lambda a, b: np.einsum("ik,k->i", a, b), id="matrix-vector"),
    Case("matmul", {"a": (4,), "b": (2, 4, 5)}, lambda a, b: np.einsum("k,bkj->bj", a, b), id="vector-matrix"),
    Case("matmul", {"a": (4,), "b": (4,)}, lambda a, b: np.einsum("k,k->", a, b), id="dot"),
    Case("contract_rows", {"a": (2, 3, 4), "b": (2, 3, 5)}, lambda a, b: np.einsum("tnk,tnj->kj", a, b)),
    Case("contract_rows", {"a": (3, 4), "b": (3, 2)}, lambda a, b: a.T @ b, id="matrix"),
    Case("slice", {"x": (4, 6)}, lambda x: x[1:4, ::-2],
         {"starts": (1, 5), "steps": (1, -2), "counts": (3, 3), "drop": ()}),
    Case("slice", {"x": (3, 5, 4)}, lambda x: x[:, 1, 0:4:3],
         {"starts": (0, 1, 0), "steps": (1, 1, 3), "counts": (3, 1, 2), "drop": (1,)}, id="index-and-step"),
    Case("slice", {"x": (2, 7)}, lambda x: x[:, 5:0:-3],
         {"starts": (0, 5), "steps": (1, -3), "counts": (2, 2), "drop": ()}, id="negative-step"),
    Case("pad", {"x": (3, 4)}, lambda x: np.pad(x, ((0, 0), (2, 1)), constant_values=0.5),
         {"before": 2, "after": 1, "value": 0.5}),
    Case("pad", {"x": (3, 4)}, lambda x: np.pad(x, ((1, 0), (0, 0))), {"before": 1, "axis": 0}, id="axis0"),
    Case("pad", {"x": (3, 5)}, lambda x: np.pad(x, ((0, 0), (3, 2)), mode="reflect"),
         {"before": 3, "after": 2, "mode": "reflect"}, id="reflect"),
    Case("pad", {"x": (4, 2)}, lambda x: np.pad(x, ((1, 0), (0, 0)), mode="reflect"),
         {"before": 1, "axis": 0, "mode": "reflect"}, id="reflect-before"),
    Case("concat", {"a": (3, 2), "b": (3, 4), "c": (3, 1)}, lambda a, b, c: np.concatenate([a, b, c], axis=1),
         {"axis": 1}),
    Case("concat", {"a": (2, 3), "b": (1, 3)}, lambda a, b: np.concatenate([a, b]), {"axis": 0}, id="axis0"),
    Case("unsqueeze", {"x": (3, 4)}, lambda x: x[:, None, :, None], {"axis": (1, 3)}),
    Case("squeeze", {"x": (3, 1, 4, 1)}, lambda x: x.reshape(3, 4)),
    Case("squeeze", {"x": (3, 1, 4, 1)}, lambda x: x.reshape(3, 4, 1), {"axis": 1}, id="axis"),
    Case("flatten", {"x": (2, 3, 4)}, lambda x: x.reshape(2, 12)),
    Case("flatten", {"x": (2, 3, 4, 2)}, lambda x: x.reshape(6, 4, 2), {"start": 0, "end": 1}, id="leading"),
    Case("expand", {"x": (3, 1)}, lambda x: np.broadcast_to(x, (2, 3, 4)), {"shape": (2, 3, 4)}),
    Case("tile", {"x": (2, 3)}, lambda x: np.tile(x, (2, 3)), {"reps": (2, 3)}),
    Case("tile", {"x": (2, 3)}, lambda x: np.tile(x, 2), {"reps": 2}, id="last-axis"),
    Case("stack", {"a": (2, 3), "b": (2, 3)}, lambda a, b: np.stack([a, b]), {}),
    Case("stack", {"a": (2, 3), "b": (2, 3), "c": (2, 3)}, lambda a, b, c: np.stack([a, b, c], axis=-1),
         {"axis": -1}, id="last"),
    Case("one_hot", {"labels": (2, 3)}, lambda labels: onehot(labels, 5), {"classes": 5}),
    Case("argmax", {"x": (3, 5)}, lambda x: np.argmax(x, axis=-1)),
    Case("argmax", {"x": (3, 5, 2)}, lambda x: np.argmax(x, axis=1, keepdims=True), {"axis": 1, "keepdims": True},
         id="middle-axis"),
    Case("argmin", {"x": (4, 3)}, lambda x: np.argmin(x, axis=0), {"axis": 0}),
    Case("gather", {"x": (5, 3), "labels": (2, 4)}, lambda x, i: np.take(x, i, axis=0)),
    Case("gather", {"x": (2, 4, 3), "labels": (5,)}, lambda x, i: np.take(x, i, axis=1), {"axis": 1},
         id="middle-axis"),
    Case("cumsum", {"x": (3, 4)}, lambda x: np.cumsum(x, axis=-1)),
    Case("cumsum", {"x": (3, 4, 2)}, lambda x: np.cumsum(x, axis=1), {"axis": 1}, id="middle-axis"),
    Case("transpose", {"x": (2, 3, 4)}, lambda x: np.einsum("ijk->kji", x)),
    Case("transpose", {"x": (2, 3, 4)}, lambda x: np.einsum("ijk->ikj", x), {"axes": (0, 2, 1)}, id="axes"),
    Case("transpose", {"x": (2, 3)}, lambda x: x, {"axes": (0, 1)}, id="identity"),
    Case("transpose", {"x": (2, 3)}, lambda x: x, {"axes": (-2, -1)}, id="identity-negative"),
    Case("reshape", {"x": (2, 3, 4)}, lambda x: x.reshape(6, 4), {"shape": (-1, 4)}),
    Case("softmax", {"x": (3, 5)}, lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
    Case("softmax", {"x": (3, 5)}, lambda x: np.exp(x) / np.exp(x).sum(axis=0, keepdims=True), {"axis": 0},
         id="axis0"),
    Case("log_softmax", {"x": (3, 5)}, lambda x: x - np.log(np.exp(x).sum(axis=1, keepdims=True))),
    Case("dropout", {"x": (3, 5)}, lambda x: x, {"p": 0.3}),
    Case("mse", {"p": (4, 3), "t": (4, 3)}, lambda p, t: ((p - t) ** 2).mean()),
    Case("mae", {"p": (4, 3), "t": (4, 3)}, lambda p, t: np.abs(p - t).mean()),
    Case("huber", {"p": (6, 3), "t": (6, 3)},
         lambda p, t: np.mean([0.5 * r * r if abs(r) <= 0.5 else 0.5 * (abs(r) - 0.25) for r in (p - t).ravel()]),
         {"delta": 0.5}),
    Case("bce", {"p": (4,), "y": (4,)}, lambda p, y: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
         domain="probability"),
    Case("bce", {"p": (4, 3), "y": (4, 3)}, lambda p, y: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
         domain="probability", id="multi-label"),
    Case("bce_with_logits", {"z": (4, 3), "y": (4, 3)},
         lambda z, y: -np.mean(y * np.log(sigmoid(z)) + (1 - y) * np.log(1 - sigmoid(z))),
         domain="probability"),  # the targets must be in [0, 1]; logits there are as good as any
    Case("cross_entropy", {"s": (4, 5), "labels": (4,)},
         lambda s, y: -np.mean(np.log((np.exp(s) / np.exp(s).sum(1, keepdims=True))[np.arange(4), y]))),
    Case("cross_entropy", {"s": (4, 5), "labels": (4,)},
         lambda s, y: -np.mean(np.sum(smoothed(y, 5, 0.1) * np.log(np.exp(s) / np.exp(s).sum(1, keepdims=True)), 1)),
         {"label_smoothing": 0.1}, id="label-smoothing"),
    Case("cross_entropy", {"p": (4, 5), "labels": (4,)},
         lambda p, y: -np.mean(np.log(p[np.arange(4), y])), {"from_logits": False}, domain="distribution",
         id="probabilities"),
    Case("nll", {"lp": (4, 5), "labels": (4,)}, lambda lp, y: -np.mean(lp[np.arange(4), y])),
    Case("hinge", {"s": (4, 5), "labels": (4,)},
         lambda s, y: np.mean([sum(max(0.0, s[i, j] - s[i, y[i]] + 1.0) for j in range(5) if j != y[i])
                               for i in range(4)])),
    Case("kl_div", {"q": (3, 4), "p": (3, 4)}, lambda q, p: np.mean(np.sum(p * np.log(p / q), axis=1)),
         domain="distribution"),
    Case("l2", {"x": (3, 4)}, lambda x: 0.5 * np.sum(x**2)),
    # convolution and pooling, NCHW, against their definitions (tests/conv_reference.py)
    Case("conv2d", {"x": (2, 2, 5, 5), "w": (3, 2, 3, 3)}, conv_reference.conv2d),
    Case("conv2d", {"x": (1, 2, 6, 5), "w": (2, 2, 3, 2)}, lambda x, w: conv_reference.conv2d(
        x, w, stride=2, padding=(1, 2)), {"stride": 2, "padding": (1, 2)}, id="stride-padding"),
    Case("conv2d", {"x": (1, 4, 6, 6), "w": (4, 2, 3, 3)}, lambda x, w: conv_reference.conv2d(
        x, w, padding=2, dilation=2, groups=2), {"padding": 2, "dilation": 2, "groups": 2}, id="dilated-groups"),
    Case("conv2d", {"x": (1, 3, 5, 5), "w": (3, 1, 2, 2)}, lambda x, w: conv_reference.conv2d(
        x, w, padding=(0, 1, 0, 1), groups=3), {"padding": "same", "groups": 3}, id="depthwise-same"),
    Case("conv1d", {"x": (2, 2, 7), "w": (3, 2, 3)}, lambda x, w: conv_reference.conv2d(
        x[:, :, None], w[:, :, None], stride=2, padding=(0, 0, 1, 1))[:, :, 0], {"stride": 2, "padding": 1}),
    Case("conv_transpose2d", {"x": (1, 2, 3, 3), "w": (2, 3, 3, 3)}, lambda x, w: conv_reference.conv_transpose2d(
        x, w, stride=2, padding=1, output_padding=1), {"stride": 2, "padding": 1, "output_padding": 1}),
    Case("conv_transpose2d", {"x": (1, 4, 3, 2), "w": (4, 1, 2, 2)}, lambda x, w: conv_reference.conv_transpose2d(
        x, w, groups=2), {"groups": 2}, id="groups"),
    Case("max_pool2d", {"x": (2, 2, 6, 6)}, lambda x: conv_reference.pool2d(x, 2), {"kernel": 2}),
    Case("max_pool2d", {"x": (1, 2, 5, 5)}, lambda x: conv_reference.pool2d(x, 3, 2, 1),
         {"kernel": 3, "stride": 2, "padding": 1}, id="padded"),
    Case("max_pool2d", {"x": (1, 1, 5, 5)}, lambda x: conv_reference.pool2d(np.pad(
        x, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf), 2), {"kernel": 2, "ceil_mode": True},
         id="ceil"),
    # windows that tile the image (stride = kernel, no padding) take the reshaped-view form: cut rows and columns,
    # a rectangular kernel, ceil mode where nothing is left over
    Case("max_pool2d", {"x": (2, 2, 7, 5)}, lambda x: conv_reference.pool2d(x, 2), {"kernel": 2},
         id="tiled-cut"),
    Case("max_pool2d", {"x": (1, 2, 5, 7)}, lambda x: x[:, :, :4, :6].reshape(1, 2, 2, 2, 2, 3).max(axis=(3, 5)),
         {"kernel": (2, 3)}, id="tiled-rectangular"),
    Case("max_pool2d", {"x": (1, 1, 4, 6)}, lambda x: conv_reference.pool2d(x, 2), {"kernel": 2, "ceil_mode": True},
         id="tiled-ceil"),
    Case("avg_pool2d", {"x": (1, 2, 5, 5)}, lambda x: conv_reference.pool2d(x, 3, 2, 1, kind="avg"),
         {"kernel": 3, "stride": 2, "padding": 1}),
    Case("avg_pool2d", {"x": (1, 2, 4, 4)}, lambda x: conv_reference.pool2d(
        x, 3, 1, 1, kind="avg", count_include_pad=True), {"kernel": 3, "stride": 1, "padding": 1,
                                                         "count_include_pad": True}, id="count-pad"),
    Case("global_avg_pool", {"x": (2, 3, 3, 4)}, lambda x: x.mean(axis=(2, 3))),
    Case("global_max_pool", {"x": (2, 3, 3, 4)}, lambda x: x.max(axis=(2, 3))),
    Case("upsample", {"x": (1, 2, 2, 3)}, lambda x: x.repeat(2, axis=2).repeat(2, axis=3)),
    Case("attention", {"q": (2, 3, 4), "k": (2, 5, 4), "v": (2, 5, 3)}, lambda q, k, v: attention(q, k, v)),
    Case("attention", {"q": (2, 2, 4, 3), "k": (2, 2, 4, 3), "v": (2, 2, 4, 2)},
         lambda q, k, v: attention(q, k, v, causal=True), {"causal": True}, id="causal"),
    Case("attention", {"q": (2, 4, 3), "k": (2, 5, 3), "v": (2, 5, 2), "mask": (4, 5)},
         lambda q, k, v, m: attention(q, k, v, m, scale=0.7), {"scale": 0.7}, id="additive-mask"),
    Case("attention", {"q": (2, 2, 3, 3), "k": (2, 2, 4, 3), "v": (2, 2, 4, 3), "mask": (2, 1, 1, 4)},
         lambda q, k, v, m: attention(q, k, v, m, causal=True), {"causal": True}, id="padding-mask-causal"),
]


def case_id(case: Case) -> str:
    return f"{case.op}-{case.id}" if case.id else case.op


def sample(name: str, shape: tuple, domain: str, rng: np.random.Generator, classes: int) -> np.ndarray:
    if name.startswith("labels"):
        return rng.integers(0, classes, size=shape)
    if name.startswith("cond"):
        return rng.random(size=shape) < 0.5
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "probability":
        return rng.uniform(0.05, 0.95, size=shape)
    if domain == "wide":  # past the clipped ends of hard_sigmoid (|x| > 3)
        return rng.uniform(-5.0, 5.0, size=shape)
    if domain == "distribution":
        raw = rng.uniform(0.1, 1.0, size=shape)
        return raw / raw.sum(axis=-1, keepdims=True)
    values = rng.normal(size=shape)
    return values + np.sign(values) * 0.05  # keep away from the kinks of relu, abs, clip


def build_case(case: Case, dtype: str = "f64") -> tuple[Graph, Ref, dict[str, np.ndarray]]:
    """A graph computing the op, with objective sum(y * R) for a fixed random R, and its inputs."""
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    g = Graph(f"op_{case.op}")
    b = Builder(g)
    refs, arrays = [], {}
    classes = next(iter(case.operands.values()))[-1] if case.operands else 2
    for name, shape in case.operands.items():
        is_label = name.startswith("labels")
        t = TensorType(shape, "i64" if is_label else "bool" if name.startswith("cond") else dtype)
        refs.append(Ref(g.add("input", (), t, name=name)))
        arrays[name] = sample(name, shape, case.domain, rng, classes)
    y = b.emit(case.op, *refs, **case.attrs)
    g.outputs["y"] = y
    cotangent = rng.normal(size=tuple(b.type(y).shape))
    g.objective = b.sum(b.mul(y, b.const(cotangent, dtype)))
    return g, y, arrays


def test_every_public_op_has_a_case():
    covered = {case.op for case in CASES}
    missing = sorted(op.name for op in public_ops() if op.name not in covered)
    assert not missing, f"public ops without a test case: {missing}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_numpy(case):
    g, y, arrays = build_case(case)
    value = evaluate(g, arrays, {}, [y])[y]
    expected = case.expected(*arrays.values())
    if expected.dtype == np.bool_:
        assert value.dtype == np.bool_ and value.shape == expected.shape
        np.testing.assert_array_equal(value, expected)
    else:
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_float32(case):
    g, y, arrays = build_case(case, dtype="f32")
    value = evaluate(g, {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()}, {}, [y])[y]
    expected = case.expected(*arrays.values())
    if expected.dtype == np.bool_ or expected.dtype.kind == "i":  # operands far apart next to f32's rounding
        assert value.dtype == expected.dtype
        np.testing.assert_array_equal(value, expected)
    else:
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5)


DIFFERENTIABLE = [c for c in CASES if not all(name.startswith(("labels", "cond")) for name in c.operands)
                  and get_op(c.op).grad is not None]  # argmax and argmin give integers: no gradient


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=case_id)
def test_gradient_matches_finite_differences(case):
    g, _, arrays = build_case(case)
    reports = gradcheck(g, arrays, {}, max_elements=1000)
    assert reports, "no gradient was checked"
    for report in reports:
        assert report.checked == report.size
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_labels_take_no_gradient():
    case = next(c for c in CASES if c.op == "cross_entropy")
    g, _, _ = build_case(case)
    assert set(optimize(g).grads) == {"s"}


COMPOSITES = [case for case in CASES if get_op(case.op).composite]


def test_composites_are_the_softmaxes_the_losses_and_the_derived_reductions():
    names = {op.name for op in public_ops() if op.composite}
    assert names >= {"softmax", "log_softmax", "mse", "mae", "huber", "bce", "bce_with_logits", "cross_entropy",
                     "nll", "hinge", "kl_div", "l2", "min", "logsumexp"}
    assert not any(get_op(n).composite for n in ("add", "exp", "sum", "max", "matmul"))


@pytest.mark.parametrize("case", COMPOSITES, ids=case_id)
def test_a_composite_expands_to_primitives_with_its_value(case):
    """The expand pass's graph (what the targets lower) computes what the composite's NumPy forward computes."""
    g, y, arrays = build_case(case)
    expanded = expand(g)
    assert not any(get_op(n.op).expands(n) for n in expanded.nodes())
    value = evaluate(expanded, arrays, {}, [expanded.outputs["y"]])[expanded.outputs["y"]]
    np.testing.assert_allclose(value, evaluate(g, arrays, {}, [y])[y], rtol=1e-12, atol=1e-12)
