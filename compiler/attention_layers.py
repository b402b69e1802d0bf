"""``multi_head_attention(heads, dim)``: PyTorch's ``nn.MultiheadAttention`` (``batch_first=True``) over a
sequence ``x [N, T, F]``, self-attention, or cross-attention with ``context=c [N, S, Fc]``.

    q = x W_q^T + b_q,  k = c W_k^T + b_k,  v = c W_v^T + b_v        (c = x for self-attention)
    each [N, T or S, dim] split into ``heads`` heads of dim / heads: [N, heads, T or S, dim / heads]
    out = concat_heads(attention(q, k, v, mask, causal)) W_o^T + b_o  [N, T, dim]

Parameters, in PyTorch's [out, in] layout so that weights copy one to one: ``q_weight [dim, F]``,
``k_weight`` and ``v_weight [dim, Fc]`` (``in_proj_weight`` split in three when F = Fc = dim), their biases
``[dim]``, ``out_weight [dim, dim]`` and ``out_bias [dim]``; the weights Xavier-uniform, the biases zero.

``dropout=p`` drops attention weights in training (the op's own dropout: nothing [T, S] is stored).

Masks: ``causal=true``; ``lengths=n`` (integers [N]: each example's number of keys; later keys are left out,
PyTorch's ``key_padding_mask``); ``mask=m``, an additive mask broadcasting to [N, heads, T, S] (a [T, S]
table, say). A key left out by ``lengths`` is skipped exactly; an example with no keys gets zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from .builder import Builder, Ref
from .layer_def import LayerDef, NewParam
from .ops.registry import AttrSpec


def _sequence(b: Builder, x: Ref, what: str) -> tuple[int | str, int]:
    t = b.type(x)
    if t.rank != 3 or not isinstance(t.shape[-1], int) or not t.is_float:
        raise ShapeError(f"multi_head_attention: {what} must be a float sequence [N, T, F], got {t}")
    return t.shape[1], t.shape[2]


def _project(b: Builder, x: Ref, role: str, features: int, dim: int, heads: int, bias: bool,
             new_param: NewParam) -> Ref:
    """x W^T + b, [N, L, dim], split into heads: [N, heads, L, dim / heads]."""
    weight = new_param(f"{role}_weight", (dim, features), {"kind": "xavier_uniform"})
    y = b.matmul(x, b.transpose(weight, axes=(1, 0)))
    if bias:
        y = b.add(y, new_param(f"{role}_bias", (dim,), {"kind": "zeros"}))
    length = b.type(x).shape[1]
    return b.transpose(b.reshape(y, shape=(b.graph.batch_symbol, length, heads, dim // heads)), axes=(0, 2, 1, 3))


def _key_padding(b: Builder, lengths: Ref, keys: Ref, dtype: str) -> Ref:
    """[N, 1, 1, S]: 0 for the keys inside each example's length, -inf for the others (the log of 0 or 1: the
    attention kernels skip a -inf score exactly, and a row that sees no key gets zeros)."""
    t = b.type(lengths)
    if t.rank != 1 or t.is_float or t.is_bool:
        raise ShapeError(f"multi_head_attention: lengths are whole numbers, one per example [N], got {t}")
    count = b.type(keys).shape[1]
    positions = b.const(np.arange(count).reshape(1, count), t.dtype)
    inside = b.lt(positions, b.expand_dims(lengths, axis=(1,)))  # [N, S]
    return b.expand_dims(b.log(b.cast(inside, dtype=dtype)), axis=(1, 2))


def _multi_head_attention(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    heads, dim = attrs["heads"], attrs["dim"]
    if heads < 1 or dim < 1 or dim % heads:
        raise ShapeError(f"multi_head_attention: dim ({dim}) must be a positive multiple of heads ({heads})")
    _, features = _sequence(b, x, "its input")
    context = attrs.get("context")
    source = x if context is None else context
    _, context_features = _sequence(b, source, "the context")
    dtype = b.type(x).dtype
    q = _project(b, x, "q", features, dim, heads, attrs["bias"], new_param)
    k = _project(b, source, "k", context_features, dim, heads, attrs["bias"], new_param)
    v = _project(b, source, "v", context_features, dim, heads, attrs["bias"], new_param)
    masks = [m for m in (attrs.get("mask"),) if m is not None]
    if attrs.get("lengths") is not None:
        masks.append(_key_padding(b, attrs["lengths"], source, dtype))
    mask = None
    for m in masks:
        mask = m if mask is None else b.add(mask, m)
    operands = (q, k, v) if mask is None else (q, k, v, mask)
    heads_out = b.attention(*operands, causal=attrs["causal"], dropout=attrs["dropout"])  # [N, heads, T, dim / heads]
    rows = b.type(x).shape[1]
    joined = b.reshape(b.transpose(heads_out, axes=(0, 2, 1, 3)), shape=(b.graph.batch_symbol, rows, dim))
    out = b.matmul(joined, b.transpose(new_param("out_weight", (dim, dim), {"kind": "xavier_uniform"}),
                                       axes=(1, 0)))
    if attrs["bias"]:
        out = b.add(out, new_param("out_bias", (dim,), {"kind": "zeros"}))
    return out


def _positions(b: Builder, x: Ref, layer: str) -> tuple[int, int]:
    t = b.type(x)
    if t.rank != 3 or not all(isinstance(d, int) for d in t.shape[1:]) or not t.is_float:
        raise ShapeError(f"{layer}: expects a float sequence [N, T, d] of a fixed length, got {t}")
    return t.shape[1], t.shape[2]


def sinusoidal_table(steps: int, width: int) -> np.ndarray:
    """Vaswani et al.'s encoding [T, d]: sin(t / 10000^(2i/d)) at 2i, cos at 2i + 1."""
    position = np.arange(steps, dtype=np.float64)[:, None]
    rates = np.exp(-np.log(10000.0) * np.arange(0, width, 2, dtype=np.float64) / width)
    table = np.zeros((steps, width))
    table[:, 0::2] = np.sin(position * rates)
    table[:, 1::2] = np.cos(position * rates[: width // 2])
    return table


def _sinusoidal_positions(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    steps, width = _positions(b, x, "sinusoidal_positions")
    return b.add(x, b.const(sinusoidal_table(steps, width), b.type(x).dtype))


def _learned_positions(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
    steps, width = _positions(b, x, "learned_positions")
    return b.add(x, new_param("table", (steps, width), {"kind": "normal", "mean": 0.0, "std": attrs["std"]}))


ATTENTION_LAYERS = {
    "sinusoidal_positions": LayerDef(
        "sinusoidal_positions", (), _sinusoidal_positions,
        "x + P for a sequence x [N, T, d], P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)) "
        "(Vaswani et al.'s positional encoding, a constant)",
        "none",
    ),
    "learned_positions": LayerDef(
        "learned_positions", (AttrSpec("std", "float", 0.02, doc="the table's initial standard deviation"),),
        _learned_positions,
        "x + P for a sequence x [N, T, d], P a trained table [T, d] (one vector per position)",
        "table [T, d] (normal, std 0.02)",
    ),
    "multi_head_attention": LayerDef(
        "multi_head_attention",
        (AttrSpec("heads", "int", doc="the number of heads"),
         AttrSpec("dim", "int", doc="the width of queries, keys and values across the heads, and of the output"),
         AttrSpec("causal", "bool", False, doc="each position attends to itself and the positions before it"),
         AttrSpec("bias", "bool", True, doc="biases on the four projections"),
         AttrSpec("dropout", "float", 0.0, doc="in training, drop each attention weight with this probability "
                  "(PyTorch's dropout on the weights)")),
        _multi_head_attention,
        "PyTorch's nn.MultiheadAttention: x [N, T, F] projected to queries, the context (x, or context=) to keys "
        "and values, split into heads, scaled dot-product attention per head, the heads joined and projected: "
        "[N, T, dim]",
        "q_weight [dim, F], k_weight, v_weight [dim, F of the context] (Xavier uniform), out_weight [dim, dim]; "
        "q_bias, k_bias, v_bias, out_bias [dim] (zeros)",
        tensors=(
            AttrSpec("context", "tensor", None, doc="the sequence [N, S, Fc] that keys and values come from "
                     "(cross-attention); x itself by default"),
            AttrSpec("lengths", "tensor", None, doc="integers [N]: each example's number of keys; later keys are "
                     "left out (padding)"),
            AttrSpec("mask", "tensor", None, doc="an additive mask broadcasting to [N, heads, T, S]"),
        ),
    ),
}
