"""Pooling in NCHW: ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool``, ``global_max_pool`` and
``upsample``.

A pooling window is an index map: ``max_pool2d`` is the maximum over the last two axes of ``window(x)``, so the
reduction loop reads ``x`` through the window's map and no window is ever written out (the padding reads
the fill value: the dtype's lowest number for a maximum, 0 for a sum). ``avg_pool2d`` divides the window sums
by how many image elements each window holds (``count_include_pad=false``, the default here) or by the
padded window's size (PyTorch's default), a constant the compiler computes. Gradients go back through
``unwindow``: the output gradient spread over each window (shared among tied maxima), added where it was read.

The usual max pool (``max_pool2d(2)``: stride = kernel, no padding, no dilation) has windows that tile the
image, so it takes a shorter way: the image viewed as ``[N, C, OH, KH, OW, KW]`` (a reshape, cut first where
the windows leave a last row or column out) holds each window whole, the pool is a maximum over axes 3 and 5
of that view, and the gradient is an elementwise loop over it, reshaped back into the image: no window map
in the loops and no col2im (``unwindow``: 14 ms of the CNN benchmark's 157 ms training step at batch 256, on
one thread, for its two pools). With the tile's innermost axis unrolled (``cpu.UNROLLED_EXTENT``) the step
is about 10% faster (docs/performance.md).

``upsample`` (nearest) repeats each pixel ``scale`` times along both axes: a broadcast and a reshape.
"""

from __future__ import annotations

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..types import TensorType
from .indexing import pad_axis, take
from .registry import AttrSpec, OpDef, register
from .windows import (
    ceil_padding,
    output_size,
    pair,
    window_reference,
)

POOL_ATTRS = (
    AttrSpec("kernel", "axes", doc="a number or [height, width]"),
    AttrSpec("stride", "axes", None, doc="a number or [height, width]; none: the kernel"),
    AttrSpec("padding", "axes", 0, doc="a number or [height, width], at most half the kernel"),
    AttrSpec("ceil_mode", "bool", False, doc="count windows with ceil, not floor (PyTorch's ceil_mode)"),
)


def _pool_normalize(op: str):
    def normalize(types: list[TensorType], attrs: dict) -> dict:
        t = types[0]
        if t.rank != 4 or any(isinstance(d, str) for d in t.shape[1:]):
            raise ShapeError(f"{op} takes an NCHW image [N, C, H, W] of fixed size, got {t}")
        kernel = pair(attrs["kernel"], "kernel", op)
        stride = kernel if attrs["stride"] is None else pair(attrs["stride"], "stride", op)
        dilation = pair(attrs.get("dilation", 1), "dilation", op)
        padding = pair(attrs["padding"], "padding", op, least=0) if not (
            isinstance(attrs["padding"], tuple) and len(attrs["padding"]) == 4) else attrs["padding"]
        if len(padding) == 2:
            padding = (padding[0], padding[0], padding[1], padding[1])
        for k, d, p in zip(kernel, dilation, padding[::2], strict=True):
            if p > (d * (k - 1) + 1) // 2:
                raise ShapeError(f"{op}: padding {p} is more than half the kernel {k}")
        done = {**attrs, "kernel": kernel, "stride": stride, "padding": padding}
        return {**done, "dilation": dilation} if "dilation" in attrs else done
    return normalize


def window_attrs(t: TensorType, attrs: dict, fill: float) -> dict:
    """The ``window`` attributes of a pool on image ``t``: its padding with ceil mode's extra elements."""
    dilation = attrs.get("dilation", (1, 1))
    padding = attrs["padding"]
    if attrs["ceil_mode"]:
        padding = ceil_padding((t.shape[2], t.shape[3]), attrs["kernel"], attrs["stride"], dilation, padding,
                               "pool")
    return {"kernel": attrs["kernel"], "stride": attrs["stride"], "dilation": dilation, "padding": padding,
            "fill": fill}


def _pool_type(op: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        t = types[0]
        if not t.is_float:
            raise ShapeError(f"{op} pools floats, got {t}")
        dilation = attrs.get("dilation", (1, 1))
        top, bottom, left, right = attrs["padding"]
        sizes = [output_size(n, k, s, d, before, after, op, ceil=attrs["ceil_mode"])
                 for n, k, s, d, before, after in zip(t.shape[2:], attrs["kernel"], attrs["stride"], dilation,
                                                     (top, left), (bottom, right), strict=True)]
        return TensorType((t.shape[0], t.shape[1], *sizes), t.dtype)
    return infer


def lowest(dtype: str) -> float:
    """The fill of a maximum's padding: the dtype's most negative finite number, never chosen over a real one."""
    return float(np.finfo(np.float32 if dtype == "f32" else np.float64).min)


def _unwindow(b, windows, t: TensorType, attrs: dict):
    geometry = {k: v for k, v in attrs.items() if k != "fill"}
    return b.unwindow(windows, **geometry, image=(t.shape[2], t.shape[3]))


# ---------------------------------------------------------------- max_pool2d


def _max_pool_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x = args[0]
    windows = window_reference([x], window_attrs(TensorType(x.shape, _dtype(x)), attrs, lowest(_dtype(x))))
    return np.ascontiguousarray(windows.max(axis=(2, 3)))


def _dtype(x: np.ndarray) -> str:
    return "f32" if x.dtype == np.float32 else "f64"


def _tiling(t: TensorType, attrs: dict) -> tuple[int, int] | None:
    """(OH, OW) when the pool's windows tile the image (stride = kernel, no dilation, no padding): the
    ``[N, C, OH, KH, OW, KW]`` view holds them; None otherwise."""
    geometry = window_attrs(t, attrs, 0.0)
    if geometry["stride"] != geometry["kernel"] or geometry["dilation"] != (1, 1) or any(geometry["padding"]):
        return None
    (kh, kw), (h, w) = geometry["kernel"], t.shape[2:]
    return h // kh, w // kw


def _tiles(b, x, t: TensorType, attrs: dict, tiling: tuple[int, int]):
    """x viewed as [N, C, OH, KH, OW, KW]: the rows and columns no window reads cut off first."""
    (oh, ow), (kh, kw) = tiling, attrs["kernel"]
    x = take(b, take(b, x, 2, 0, oh * kh), 3, 0, ow * kw)
    return b.reshape(x, shape=(t.shape[0], t.shape[1], oh, kh, ow, kw))


def _max_pool_decomposition(b, n):
    t = b.type(n.inputs[0])
    tiling = _tiling(t, n.attrs)
    if tiling is not None:
        return b.max(_tiles(b, n.inputs[0], t, n.attrs, tiling), axis=(3, 5))
    windows = b.window(n.inputs[0], **window_attrs(t, n.attrs, lowest(t.dtype)))
    return b.max(windows, axis=(2, 3))


def _max_pool_grad(b, n, g):
    x = n.inputs[0]
    t = b.type(x)
    tiling = _tiling(t, n.attrs)

    def grad():
        attrs = window_attrs(t, n.attrs, lowest(t.dtype))
        windows = b.window(x, **attrs)
        top = b.expand_dims(n.id, axis=(2, 3))
        mask = b.eq_mask(windows, top)
        share = b.div(mask, b.sum(mask, axis=(2, 3), keepdims=True))  # tied maxima share the gradient
        return _unwindow(b, b.mul(b.expand_dims(g, axis=(2, 3)), share), t, attrs)

    def tiled_grad():
        (oh, ow), (kh, kw) = tiling, n.attrs["kernel"]
        mask = b.eq_mask(_tiles(b, x, t, n.attrs, tiling), b.expand_dims(n.id, axis=(3, 5)))
        share = b.div(mask, b.sum(mask, axis=(3, 5), keepdims=True))  # tied maxima share the gradient
        spread = b.reshape(b.mul(b.expand_dims(g, axis=(3, 5)), share),
                           shape=(t.shape[0], t.shape[1], oh * kh, ow * kw))
        return pad_axis(b, pad_axis(b, spread, 2, 0, t.shape[2] - oh * kh), 3, 0, t.shape[3] - ow * kw)

    return [grad if tiling is None else tiled_grad]


def _pool_flops(ts: list[TensorType], out: TensorType, attrs: dict) -> int:
    kh, kw = attrs["kernel"]
    return out.numel() * kh * kw


register(
    OpDef(
        name="max_pool2d",
        operands=("x",),
        attrs=(*POOL_ATTRS[:3], AttrSpec("dilation", "axes", 1, doc="a number or [height, width]"), POOL_ATTRS[3]),
        normalize=_pool_normalize("max_pool2d"),
        infer=_pool_type("max_pool2d"),
        forward=_max_pool_forward,
        grad=_max_pool_grad,
        decompose=_max_pool_decomposition,
        flops=_pool_flops,
        category="nn",
        formula="the maximum of each window (a reduction reading x through the window's map, or through an "
                "[N, C, OH, KH, OW, KW] view when the windows tile the image)",
        shape_rule="[N, C, H, W] -> [N, C, OH, OW], OH = (H + 2*padding - dilation*(kernel-1) - 1) // stride + 1 "
                   "(ceil with ceil_mode)",
    )
)

# ---------------------------------------------------------------- avg_pool2d


def divisors(t: TensorType, attrs: dict) -> np.ndarray:
    """[OH, OW]: what each window's sum is divided by. Without count_include_pad, the image elements in it;
    with it, also the explicit padding (never ceil mode's extra elements, as in PyTorch)."""
    image = np.ones((1, 1, t.shape[2], t.shape[3]))
    geometry = window_attrs(t, attrs, 0.0)
    if attrs["count_include_pad"]:
        top, bottom, left, right = attrs["padding"]
        image = np.pad(image, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=1.0)
        p = geometry["padding"]
        geometry = {**geometry, "padding": (0, p[1] - bottom, 0, p[3] - right)}
    return window_reference([image], geometry).sum(axis=(1, 2, 3))[0]


def _avg_pool_forward(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x = args[0]
    t = TensorType(x.shape, _dtype(x))
    sums = window_reference([x], window_attrs(t, attrs, 0.0)).sum(axis=(2, 3))
    return np.ascontiguousarray(sums / divisors(t, attrs)).astype(x.dtype)


def _divisor_const(b, t: TensorType, attrs: dict):
    return b.const(divisors(t, attrs), t.dtype)  # [OH, OW]: broadcast over examples and channels


def _avg_pool_decomposition(b, n):
    t = b.type(n.inputs[0])
    sums = b.sum(b.window(n.inputs[0], **window_attrs(t, n.attrs, 0.0)), axis=(2, 3))
    return b.div(sums, _divisor_const(b, t, n.attrs))


def _avg_pool_grad(b, n, g):
    x = n.inputs[0]
    t = b.type(x)

    def grad():
        attrs = window_attrs(t, n.attrs, 0.0)
        per_window = b.div(g, _divisor_const(b, t, n.attrs))
        kernel_ones = b.const(np.ones((*attrs["kernel"], 1, 1)), t.dtype)  # [KH, KW, 1, 1]
        spread = b.mul(b.expand_dims(per_window, axis=(2, 3)), kernel_ones)
        return _unwindow(b, spread, t, attrs)

    return [grad]


register(
    OpDef(
        name="avg_pool2d",
        operands=("x",),
        attrs=(*POOL_ATTRS, AttrSpec("count_include_pad", "bool", False,
                                     doc="divide by the padded window's size (PyTorch's default), not by the "
                                         "image elements in the window")),
        normalize=_pool_normalize("avg_pool2d"),
        infer=_pool_type("avg_pool2d"),
        forward=_avg_pool_forward,
        grad=_avg_pool_grad,
        decompose=_avg_pool_decomposition,
        flops=_pool_flops,
        category="nn",
        formula="the mean of each window's image elements (the padding not counted unless count_include_pad)",
        shape_rule="[N, C, H, W] -> [N, C, OH, OW], OH = (H + 2*padding - kernel) // stride + 1 (ceil with "
                   "ceil_mode)",
    )
)

# ---------------------------------------------------------------- global pools


def _global_type(op: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        t = types[0]
        if t.rank != 4 or not t.is_float:
            raise ShapeError(f"{op} takes a float NCHW image [N, C, H, W], got {t}")
        return TensorType(t.shape[:2], t.dtype)
    return infer


def _global_max_grad(b, n, g):
    x = n.inputs[0]

    def grad():
        mask = b.eq_mask(x, b.expand_dims(n.id, axis=(2, 3)))
        share = b.div(mask, b.sum(mask, axis=(2, 3), keepdims=True))
        return b.mul(b.expand_dims(g, axis=(2, 3)), share)

    return [grad]


def _global_avg_grad(b, n, g):
    h, w = b.type(n.inputs[0]).shape[2:]
    return [lambda: b.broadcast_like(b.div(b.expand_dims(g, axis=(2, 3)), float(h * w)), n.inputs[0])]


register(
    OpDef(
        name="global_avg_pool",
        operands=("x",),
        infer=_global_type("global_avg_pool"),
        forward=lambda args, at: np.asarray(args[0].mean(axis=(2, 3)), dtype=args[0].dtype),
        grad=_global_avg_grad,
        decompose=lambda b, n: b.mean(n.inputs[0], axis=(2, 3)),
        flops=lambda ts, out, at: ts[0].numel(),
        category="nn",
        formula="the mean over each channel's image (Keras's GlobalAveragePooling2D)",
        shape_rule="[N, C, H, W] -> [N, C]",
    )
)
register(
    OpDef(
        name="global_max_pool",
        operands=("x",),
        infer=_global_type("global_max_pool"),
        forward=lambda args, at: np.asarray(args[0].max(axis=(2, 3)), dtype=args[0].dtype),
        grad=_global_max_grad,
        decompose=lambda b, n: b.max(n.inputs[0], axis=(2, 3)),
        flops=lambda ts, out, at: ts[0].numel(),
        category="nn",
        formula="the maximum over each channel's image (tied maxima share the gradient)",
        shape_rule="[N, C, H, W] -> [N, C]",
    )
)

# ---------------------------------------------------------------- upsample


def _upsample_type(types: list[TensorType], attrs: dict) -> TensorType:
    t = types[0]
    if t.rank != 4 or any(isinstance(d, str) for d in t.shape[1:]):
        raise ShapeError(f"upsample takes an NCHW image [N, C, H, W] of fixed size, got {t}")
    if attrs["scale"] < 1:
        raise ShapeError(f"upsample: scale must be at least 1, got {attrs['scale']}")
    s = attrs["scale"]
    return TensorType((t.shape[0], t.shape[1], t.shape[2] * s, t.shape[3] * s), t.dtype)


def _upsample_decomposition(b, n):
    s = n.attrs["scale"]
    x = b.expand_dims(n.inputs[0], axis=(3, 5))  # [N, C, H, 1, W, 1]
    repeated = b.mul(x, b.const(np.ones((s, 1, s)), b.type(n.inputs[0]).dtype))
    return b.reshape(repeated, shape=n.type.shape)


def _upsample_grad(b, n, g):
    s = n.attrs["scale"]
    big, x = n.type.shape, b.type(n.inputs[0]).shape
    return [lambda: b.sum(b.reshape(g, shape=(big[0], big[1], x[2], s, x[3], s)), axis=(3, 5))]


register(
    OpDef(
        name="upsample",
        operands=("x",),
        attrs=(AttrSpec("scale", "int", 2, doc="how many times each pixel repeats along each axis"),),
        infer=_upsample_type,
        forward=lambda args, at: np.ascontiguousarray(args[0].repeat(at["scale"], axis=2).repeat(at["scale"], axis=3)),
        grad=_upsample_grad,
        decompose=_upsample_decomposition,
        flops=lambda ts, out, at: out.numel(),
        category="nn",
        formula="nearest-neighbour upsampling: each pixel repeated scale x scale times",
        shape_rule="[N, C, H, W] -> [N, C, H*scale, W*scale]",
    )
)
