"""Sliding windows over images, the primitive under convolution and pooling: ``window`` and its transpose
``unwindow``.

``window(x)`` of an NCHW image ``x`` is the tensor ``[N, C, KH, KW, OH, OW]`` of every window the kernel
visits: ``x[n, c, sh*oh + dh*kh - top, sw*ow + dw*kw - left]``, or the fill value where that falls in the
padding. It only moves elements, so it is an index map with guards: a pooling reduction reads ``x`` through
it directly (no copy), and a convolution, whose matrix product needs its operand in memory, gets the windows
written once (im2col) by a copy loop the schedule makes from the same map. The layout is Caffe's column
layout: the output position last, so the copy loop reads and writes along rows of the image, a pool reduces
the middle axes straight into NCHW, and each example's convolution is ``W [F, C*KH*KW] @ cols [C*KH*KW,
OH*OW]``, already NCHW: no transpose anywhere.

``unwindow`` is its transpose: each window element added back to the place it was read from (col2im); it is
the gradient of ``window`` and the heart of a transposed convolution. The two are each other's gradients.

The geometry helpers (:func:`pair`, :func:`resolve_padding`, :func:`output_size`) are shared by the ops built
on windows (``ops/convolution.py``, ``ops/pooling.py``), so every op states sizes and errors the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..graph import Node
from ..index_maps import AffineExpr, Guard, IndexMap
from ..types import TensorType
from .registry import AttrSpec, OpDef, register

Pair = tuple[int, int]
Padding = tuple[int, int, int, int]  # top, bottom, left, right


def pair(value: Any, name: str, op: str, least: int = 1) -> Pair:
    """``3`` or ``[3, 2]`` as (height, width), each at least ``least``."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or any(not isinstance(v, int) for v in values):
        raise ShapeError(f"{op}: {name} is a number or [height, width], got {value}")
    if min(values) < least:
        raise ShapeError(f"{op}: {name} must be at least {least}, got {value}")
    return values  # type: ignore[return-value]


def resolve_padding(padding: Any, size: Pair, kernel: Pair, stride: Pair, dilation: Pair, op: str) -> Padding:
    """``padding`` as (top, bottom, left, right): a number, [height, width], [top, bottom, left, right],
    ``valid`` (none) or ``same`` (the output is ceil(input / stride) long, the extra element after, as in
    TensorFlow and, at stride 1, PyTorch)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        sides = []
        for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
            out = -(-n // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
            sides += [total // 2, total - total // 2]
        return tuple(sides)  # type: ignore[return-value]
    values = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(values) == 2:
        values = (values[0], values[0], values[1], values[1])
    if len(values) != 4 or any(not isinstance(v, int) or v < 0 for v in values):
        raise ShapeError(f"{op}: padding is same, valid, a number or a list of 2 or 4 numbers of 0 or more, "
                         f"got {padding}")
    return values  # type: ignore[return-value]


def output_size(n: int, k: int, s: int, d: int, before: int, after: int, op: str, ceil: bool = False) -> int:
    """How many windows fit along an axis of length ``n`` (floor, or ceil as PyTorch's ceil_mode: a last
    window that starts in the padding after the input is dropped)."""
    span = d * (k - 1) + 1
    padded = n + before + after
    if span > padded:
        what = f"kernel {k}" if d == 1 else f"kernel {k} at dilation {d} (spanning {span})"
        raise ShapeError(f"{op}: {what} larger than padded input {padded}")
    count = (padded - span) // s + 1
    if ceil:
        count = -(-(padded - span) // s) + 1
        if (count - 1) * s >= n + before:
            count -= 1
    return count


def window_geometry(t: TensorType, attrs: dict, op: str) -> tuple[Pair, Pair]:
    """The output's (OH, OW) for ``window`` attributes on image type ``t``; the input's (H, W)."""
    if t.rank != 4:
        raise ShapeError(f"{op} takes an NCHW image [N, C, H, W], got {t}")
    size = t.shape[2], t.shape[3]
    if any(isinstance(d, str) for d in size):
        raise ShapeError(f"{op}: the image size of {t} must be fixed numbers")
    top, bottom, left, right = attrs["padding"]
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["dilation"]
    out = (output_size(size[0], kh, sh, dh, top, bottom, op), output_size(size[1], kw, sw, dw, left, right, op))
    return out, size  # type: ignore[return-value]


WINDOW_ATTRS = (
    AttrSpec("kernel", "axes", doc="(KH, KW)"),
    AttrSpec("stride", "axes", (1, 1)),
    AttrSpec("dilation", "axes", (1, 1)),
    AttrSpec("padding", "axes", (0, 0, 0, 0), doc="(top, bottom, left, right)"),
    AttrSpec("fill", "float", 0.0, doc="the value read in the padding"),
)


# ---------------------------------------------------------------- window


def _window_type(types: list[TensorType], attrs: dict) -> TensorType:
    t = types[0]
    (oh, ow), _ = window_geometry(t, attrs, "window")
    kh, kw = attrs["kernel"]
    return TensorType((t.shape[0], t.shape[1], kh, kw, oh, ow), t.dtype)


def _padded(x: np.ndarray, padding: Padding, fill: float) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=np.asarray(fill, x.dtype))


def window_reference(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    x = args[0]
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["dilation"]
    (oh, ow), _ = window_geometry(TensorType(x.shape, "f64"), attrs, "window")
    padded = _padded(x, attrs["padding"], attrs["fill"])
    out = np.empty((x.shape[0], x.shape[1], kh, kw, oh, ow), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + sh * (oh - 1) + 1, sh)
            out[:, :, p, q] = padded[:, :, rows, q * dw: q * dw + sw * (ow - 1) + 1: sw]
    return out


def _window_map(node: Node) -> IndexMap:
    """Output index (n, c, kh, kw, oh, ow) -> input index (n, c, sh*oh + dh*kh - top, sw*ow + dw*kw - left)."""
    (sh, sw), (dh, dw) = node.attrs["stride"], node.attrs["dilation"]
    top, _, left, _ = node.attrs["padding"]
    rows = AffineExpr(((2, dh), (4, sh)), -top)
    cols = AffineExpr(((3, dw), (5, sw)), -left)
    exprs = (AffineExpr.axis(0), AffineExpr.axis(1), rows, cols)
    return IndexMap(exprs, _guards(node, rows, cols))


def _guards(node: Node, rows: AffineExpr, cols: AffineExpr) -> tuple[Guard, ...]:
    """Only the sides that can fall outside the image are guarded: no padding, no test in the loop."""
    top, bottom, left, right = node.attrs["padding"]
    height, width = node.attrs["image"]
    guards = []
    if top or bottom:
        guards.append(Guard(rows, height))
    if left or right:
        guards.append(Guard(cols, width))
    return tuple(guards)


def _window_normalize(types: list[TensorType], attrs: dict) -> dict:
    t = types[0]
    if t.rank == 4 and all(isinstance(d, int) for d in t.shape[2:]):
        attrs = {**attrs, "image": (t.shape[2], t.shape[3])}
    return attrs


register(
    OpDef(
        name="window",
        operands=("x",),
        attrs=(*WINDOW_ATTRS, AttrSpec("image", "axes", (0, 0), doc="(H, W) of x, filled in by the compiler")),
        normalize=_window_normalize,
        infer=_window_type,
        forward=window_reference,
        grad=lambda b, n, g: [lambda: b.unwindow(g, **_unwindow_attrs(n.attrs))],
        index_map=_window_map,
        fill=lambda n: n.attrs["fill"],
        category="shape",
        public=False,
        formula="every window of an NCHW image, [N, C, KH, KW, OH, OW] (no copy: loops read x through the map)",
        shape_rule="[N, C, H, W] -> [N, C, KH, KW, OH, OW]",
    )
)


def _unwindow_attrs(attrs: dict) -> dict:
    return {k: attrs[k] for k in ("kernel", "stride", "dilation", "padding", "image")}


# ---------------------------------------------------------------- unwindow


def _unwindow_type(types: list[TensorType], attrs: dict) -> TensorType:
    g = types[0]
    if g.rank != 6:
        raise ShapeError(f"unwindow takes windows [N, C, KH, KW, OH, OW], got {g}")
    height, width = attrs["image"]
    image = TensorType((g.shape[0], g.shape[1], height, width), g.dtype)
    (oh, ow), _ = window_geometry(image, {**attrs, "fill": 0.0}, "unwindow")
    if (*attrs["kernel"], oh, ow) != tuple(g.shape[2:]):
        raise ShapeError(f"unwindow: {g} are not the windows of {image}")
    return image


def unwindow_reference(args: list[np.ndarray], attrs: dict) -> np.ndarray:
    g = args[0]
    n, c, kh, kw, oh, ow = g.shape
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    top, bottom, left, right = attrs["padding"]
    height, width = attrs["image"]
    padded = np.zeros((n, c, height + top + bottom + sh, width + left + right + sw), dtype=g.dtype)
    for p in range(kh):
        for q in range(kw):
            padded[:, :, p * dh: p * dh + sh * (oh - 1) + 1: sh, q * dw: q * dw + sw * (ow - 1) + 1: sw] += (
                g[:, :, p, q])
    return np.ascontiguousarray(padded[:, :, top: top + height, left: left + width])


register(
    OpDef(
        name="unwindow",
        operands=("windows",),
        attrs=(*WINDOW_ATTRS[:4], AttrSpec("image", "axes", doc="(H, W) of the image")),
        infer=_unwindow_type,
        forward=unwindow_reference,
        grad=lambda b, n, g: [lambda: b.window(g, **n.attrs, fill=0.0)],
        category="shape",
        public=False,
        flops=lambda ts, out, at: ts[0].numel(),
        formula="each window element added back where window() read it (col2im); window's transpose",
        shape_rule="[N, C, KH, KW, OH, OW] -> [N, C, H, W]",
    )
)


def ceil_padding(size: Pair, kernel: Pair, stride: Pair, dilation: Pair, padding: Padding, op: str) -> Padding:
    """Padding with the extra elements after the image that ceil mode's last windows reach into."""
    top, bottom, left, right = padding
    extra = []
    for n, k, s, d, before, after in zip(size, kernel, stride, dilation, (top, left), (bottom, right), strict=True):
        count = output_size(n, k, s, d, before, after, op, ceil=True)
        extra.append(max(0, (count - 1) * s + d * (k - 1) + 1 - (n + before + after)))
    return (top, bottom + extra[0], left, right + extra[1])

