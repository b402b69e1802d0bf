"""Scaled dot-product attention, ``attention(q, k, v[, mask], causal=, scale=, dropout=)``, and the internal ops
of its gradient.

    s[..., i, j] = scale * q[..., i, :] . k[..., j, :] + mask[..., i, j]     (j > i left out when causal)
    out[..., i, :] = sum_j softmax_j(s[..., i, :]) v[..., j, :]

q is [..., T, D], k [..., S, D] and v [..., S, Dv] with the same leading dimensions (batch, heads); the result
is [..., T, Dv]. ``scale`` 0 (the default) means 1 / sqrt(D). The optional ``mask`` is added to the scores
(a large negative number leaves a key out); it broadcasts to [..., T, S], and its gradient is the scores'
(summed where it broadcasts), the one [T, S] array the gradient makes, only where a mask takes one.
``causal`` leaves out the keys after each query (PyTorch's ``is_causal``: the query i sees keys 0..i). A
query that sees no key at all gets zeros, and passes no gradient.

The NumPy forwards here are the reference: they build the [T, S] scores. The targets never do: their kernels
run the online softmax (FlashAttention's recurrence), one query row at a time against the keys in turn, with
a running maximum and sum. The gradient recomputes rather than stores: ``attention_lse`` recomputes each
query's log-sum-exp (in a training graph, the pass ``attention-lse`` has the forward kernel write it beside
its output instead: ``attention_with_lse``, two results), and one op, ``attention_grads``, recomputes each
tile's probabilities from it once and makes the three gradients (its three results, FlashAttention-2's
backward pass):

    p = exp(s - lse),  delta_i = sum_c g[i, c] out[i, c],  ds = p * (g . v_j - delta_i)
    dq_i = scale * sum_j ds_ij k_j,   dk_j = scale * sum_i ds_ij q_i,   dv_j = sum_i p_ij g_i

Dropout on the attention weights (``dropout=p``, in training only) multiplies each weight p_ij by
z_ij = keep_ij / (1 - p). Storing the [T, S] mask would undo the point of the online softmax, so, as in
FlashAttention, the mask is a function: keep_ij is whether a 32-bit hash of (seed, entry, i, j) is at least
p * 2^32, and every kernel that needs it recomputes it. The seed's low 32 bits are the draw and its upper bits
the number of the first entry (0, but for a data-parallel rank's shard, whose entries continue the whole
batch's, so that its drops are the whole batch's). The seed is a fifth operand that the training pass
``attention_seeds`` adds (an input fed a fresh number each step; no seed, or a negative one: no dropout,
as in evaluation). With the weights z p, the output is sum_j z_ij p_ij v_j, the row sums (the log-sum-exp)
do not change, delta_i = g_i . out_i still holds, and the gradient's formulas become

    ds = p * (z * (g . v_j) - delta_i),   dv_j = sum_i z_ij p_ij g_i
"""

from __future__ import annotations

import math

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..types import TensorType, promote
from .registry import AttrSpec, OpDef, register

ATTRS = (
    AttrSpec("causal", "bool", False, doc="leave out the keys after each query (query i sees keys 0..i)"),
    AttrSpec("scale", "float", 0.0, doc="the scores' factor; 0: 1 / sqrt(D)"),
    AttrSpec("dropout", "float", 0.0, doc="in training, drop each attention weight with this probability"),
)
WORD = 0xFFFFFFFF
MIX = 0x45D9F3B


def effective_scale(attrs: dict, depth: int) -> float:
    """The scores' factor: the ``scale`` attribute, or 1 / sqrt(D) where it is 0."""
    return float(attrs["scale"]) if attrs["scale"] else 1.0 / math.sqrt(depth)


def dropout_hash(seed, e, i, j):
    """Whether weight (i, j) of entry e is kept: kept when this 32-bit hash is at least p * 2^32. Four rounds
    of a multiply-xorshift finalizer, taking in the seed, e, i and j in turn; written once for NumPy int64
    arrays and for scalars in Numba's cpu and cuda kernels alike (0 <= x < 2^32: every product stays below
    2^63, and nothing calls out of the function)."""
    x = seed
    for word in (0, e, i, j):
        x = x ^ word
        x = ((x >> 16) ^ x) * MIX & WORD
        x = ((x >> 16) ^ x) * MIX & WORD
        x = (x >> 16) ^ x
    return x


def _normalize(types: list[TensorType], attrs: dict) -> dict:
    if not 0.0 <= attrs["dropout"] < 1.0:
        raise ShapeError(f"attention: dropout must be in [0, 1), got {attrs['dropout']}")
    return attrs


# ---------------------------------------------------------------- shapes


def _check_mask(mask: TensorType, q: TensorType, s: int | str, what: str) -> None:
    target = (*q.shape[:-1], s)
    if not mask.is_float or mask.rank > len(target) or any(
            m != 1 and m != t for m, t in zip(reversed(mask.shape), reversed(target), strict=False)):
        shape = "[" + ", ".join(str(d) for d in target) + "]"
        raise ShapeError(f"{what}: the mask {mask} must be a float tensor that broadcasts to the scores' shape "
                         f"{shape} (queries {q})")


def _qkv(types: list[TensorType], what: str) -> tuple[TensorType, TensorType, TensorType]:
    q, k, v = types[:3]
    if any(t.rank < 2 or not t.is_float for t in (q, k, v)):
        raise ShapeError(f"{what}: q, k and v must be float tensors [..., T, D], [..., S, D], [..., S, Dv]; "
                         f"got {q}, {k}, {v}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ShapeError(f"{what}: q, k and v must have the same leading dimensions; got {q}, {k}, {v}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"{what}: the queries {q} and the keys {k} must have the same last dimension D")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{what}: the keys {k} and the values {v} must have the same number of rows S")
    return q, k, v


def _check_seed(types: list[TensorType], position: int, what: str) -> None:
    if len(types) > position and (types[position].rank != 0 or types[position].is_float):
        raise ShapeError(f"{what}: the dropout seed must be an integer scalar, got {types[position]}")


def _attention_type(types: list[TensorType], attrs: dict) -> TensorType:
    q, k, v = _qkv(types, "attention")
    if len(types) >= 4:
        _check_mask(types[3], q, k.shape[-2], "attention")
    _check_seed(types, 4, "attention")
    return TensorType((*q.shape[:-1], v.shape[-1]), promote(promote(q.dtype, k.dtype), v.dtype))


def _lse_type(types: list[TensorType], attrs: dict) -> TensorType:
    q, k, mask = types
    _check_mask(mask, q, k.shape[-2], "attention_lse")
    return TensorType(q.shape[:-1], q.dtype)


def gradient_types(types: list[TensorType]) -> list[TensorType]:
    """attention_grads' results: the gradients of q, k and v (v's: k's rows, g's width)."""
    _check_seed(types, 7, "attention_grads")
    q, k, g = types[0], types[1], types[3]
    return [q, k, TensorType(k.shape[:-1] + g.shape[-1:], k.dtype)]


def with_lse_types(types: list[TensorType]) -> list[TensorType]:
    """attention_with_lse's results: attention's output and each query's log-sum-exp."""
    return [_attention_type(types, {}), TensorType(types[0].shape[:-1], types[0].dtype)]


# ---------------------------------------------------------------- NumPy reference


def scores(q: np.ndarray, k: np.ndarray, mask: np.ndarray | None, attrs: dict) -> np.ndarray:
    """The [..., T, S] scores, causal keys set to -inf."""
    s = effective_scale(attrs, q.shape[-1]) * (q @ np.swapaxes(k, -1, -2))
    if mask is not None:
        s = s + mask
    if attrs["causal"]:
        t, n = s.shape[-2:]
        s = np.where(np.arange(n)[None, :] > np.arange(t)[:, None], -np.inf, s)
    return s.astype(q.dtype)


def log_sum_exp(s: np.ndarray) -> np.ndarray:
    """Each row's log-sum-exp over its last axis; -inf for a row with no finite score."""
    top = np.max(s, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (np.log(np.sum(np.exp(s - safe), axis=-1, keepdims=True)) + safe)[..., 0].astype(s.dtype)


def probabilities(s: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """exp(s - lse), 0 in a row that sees no key."""
    finite = np.isfinite(lse)[..., None]
    return np.where(finite, np.exp(s - np.where(finite, lse[..., None], 0.0)), 0.0).astype(s.dtype)


def dropout_weights(seed: np.ndarray | None, attrs: dict, shape: tuple[int, ...]) -> np.ndarray | float:
    """z = keep / (1 - p) for the [..., T, S] weights (entries numbered in C order), or 1 without dropout."""
    p = float(attrs["dropout"])
    if seed is None or int(seed) < 0 or p == 0.0:
        return 1.0
    *lead, t, n = shape
    e = np.arange(math.prod(lead), dtype=np.int64).reshape((*lead, 1, 1)) + (int(seed) >> 32)
    i, j = np.arange(t, dtype=np.int64)[:, None], np.arange(n, dtype=np.int64)[None, :]
    keep = dropout_hash(np.int64(int(seed) & WORD), e, i, j) >= p * 2.0 ** 32
    return keep / (1.0 - p)


def _seed(args: list[np.ndarray], position: int) -> np.ndarray | None:
    return args[position] if len(args) > position else None


def _attention_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    q, k, v = args[:3]
    s = scores(q, k, args[3] if len(args) >= 4 else None, attrs)
    z = dropout_weights(_seed(args, 4), attrs, s.shape)
    return ((z * probabilities(s, log_sum_exp(s))) @ v).astype(q.dtype)


def _lse_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    q, k, mask = args
    return log_sum_exp(scores(q, k, mask, attrs))


def _score_gradient(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    """ds = p * (z * dp - delta), [..., T, S], from (q, k, v, g, lse, delta, mask[, seed])."""
    q, k, v, g, lse, delta, mask = args[:7]
    p = probabilities(scores(q, k, mask, attrs), lse)
    z = dropout_weights(_seed(args, 7), attrs, p.shape)
    return p * (z * (g @ np.swapaxes(v, -1, -2)) - delta[..., None])


def _dq_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    q, k = args[:2]
    return (effective_scale(attrs, q.shape[-1]) * (_score_gradient(args, attrs) @ k)).astype(q.dtype)


def _dk_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    q = args[0]
    ds = _score_gradient(args, attrs)
    return (effective_scale(attrs, q.shape[-1]) * (np.swapaxes(ds, -1, -2) @ q)).astype(q.dtype)


def _ds_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    return _score_gradient(args, attrs).astype(args[0].dtype)


def _ds_type(types: list[TensorType], attrs: dict) -> TensorType:
    q, k = types[:2]
    return TensorType((*q.shape[:-1], k.shape[-2]), q.dtype)


def _dv_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    q, k, _, g, lse, _, mask = args[:7]
    p = probabilities(scores(q, k, mask, attrs), lse)
    p = p * dropout_weights(_seed(args, 7), attrs, p.shape)
    return (np.swapaxes(p, -1, -2) @ g).astype(q.dtype)


def _grads_forward(args: list[np.ndarray], attrs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _dq_forward(args, attrs), _dk_forward(args, attrs), _dv_forward(args, attrs)


def _with_lse_forward(args: list[np.ndarray], attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    q, k, _, mask = args[:4]
    return _attention_forward(args, attrs), log_sum_exp(scores(q, k, mask, attrs))


# ---------------------------------------------------------------- gradient


def _attention_grad(b, n, g):
    q, k, v = n.inputs[:3]
    attrs = {"causal": n.attrs["causal"], "scale": n.attrs["scale"]}
    mask = n.inputs[3] if len(n.inputs) >= 4 else b.const(0.0, b.type(q).dtype)
    seed = n.inputs[4:5]  # the dropout seed, when the training pass gave one
    dropped = {**attrs, "dropout": n.attrs["dropout"] if seed else 0.0}
    built = {}

    def parts():
        if not built:
            built["lse"] = b.attention_lse(q, k, mask, **attrs)
            built["delta"] = b.sum(b.mul(g, n.id), axis=-1)
        return built["lse"], built["delta"]

    def gradients():  # one op, its three results: the gradients of q, k and v
        if "grads" not in built:
            node = b.attention_grads(q, k, v, g, *parts(), mask, *seed, **dropped)
            types = gradient_types([b.type(x) for x in b.graph.node(node).inputs])
            built["grads"] = [b.result(node, index=j, type=t) for j, t in enumerate(types)]
        return built["grads"]

    thunks = [lambda: gradients()[0], lambda: gradients()[1], lambda: gradients()[2]]
    if len(n.inputs) >= 4:  # the mask's gradient is ds itself, summed where the mask broadcasts: [T, S] values
        thunks.append(lambda: b.attention_ds(q, k, v, g, *parts(), mask, *seed, **dropped))
    if seed:
        thunks.append(None)
    return thunks


# ---------------------------------------------------------------- FLOPs


def _attention_flops(types: list[TensorType], out: TensorType, attrs: dict) -> int:
    """2 T S D for the scores, 2 T S Dv for the weighted sum, about 5 T S for the softmax (per entry)."""
    q, k = types[0], types[1]
    entries = math.prod(d for d in q.shape[:-2] if isinstance(d, int))
    t, d = (x if isinstance(x, int) else 1 for x in q.shape[-2:])
    s = k.shape[-2] if isinstance(k.shape[-2], int) else 1
    dv = out.shape[-1] if isinstance(out.shape[-1], int) else 1
    return entries * t * s * (2 * d + 2 * dv + 5)


register(
    OpDef(
        name="attention",
        operands=("q", "k", "v", "mask", "seed"),
        optional=1,
        internal_operands=1,
        normalize=_normalize,
        infer=_attention_type,
        forward=_attention_forward,
        grad=_attention_grad,
        attrs=ATTRS,
        category="nn",
        casts=(0, 1, 2, 3),  # not the seed
        flops=_attention_flops,
        formula="softmax(scale * q k^T + mask) v over the keys, row by row (online softmax on every target: the "
                "[T, S] scores are never stored); causal: query i sees keys 0..i; scale 0: 1/sqrt(D); dropout: "
                "in training, each weight dropped with probability p (a hash of its place, never stored)",
        shape_rule="[..., T, D], [..., S, D], [..., S, Dv] (, mask broadcasting to [..., T, S]) -> [..., T, Dv]",
    )
)

INTERNAL = dict(attrs=ATTRS, category="nn", public=False)
GRADIENT = ("q", "k", "v", "g", "lse", "delta", "mask", "seed")  # the seed only with dropout
register(OpDef(name="attention_lse", operands=("q", "k", "mask"), infer=_lse_type, forward=_lse_forward,
               formula="each query's log-sum-exp of its scores (attention's gradient recomputes it)",
               shape_rule="[..., T, D], [..., S, D], mask -> [..., T]", **INTERNAL))
register(OpDef(name="attention_grads", operands=GRADIENT, optional=1, multi_result=True,
               infer=lambda ts, at: gradient_types(ts)[0], forward=_grads_forward,
               formula="attention's gradients with respect to q, k and v (three results), each tile's "
               "probabilities recomputed once", shape_rule="-> [..., T, D], [..., S, D], [..., S, Dv]", **INTERNAL))
register(OpDef(name="attention_with_lse", operands=("q", "k", "v", "mask", "seed"), optional=1,
               multi_result=True, infer=lambda ts, at: with_lse_types(ts)[0], forward=_with_lse_forward,
               formula="attention's output and each query's log-sum-exp (two results), in one pass",
               shape_rule="-> [..., T, Dv], [..., T]", **INTERNAL))
register(OpDef(name="attention_ds", operands=GRADIENT, optional=1, infer=_ds_type, forward=_ds_forward,
               formula="attention's gradient with respect to its scores (a mask's gradient: the one [T, S] "
               "array attention's gradient makes, only where a mask takes a gradient)",
               shape_rule="-> [..., T, S]", **INTERNAL))
