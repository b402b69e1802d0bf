"""Convolutions in NCHW (PyTorch's and ONNX's layout): ``conv2d``, ``conv1d`` and ``conv_transpose2d``.

All three are composites of primitives, so every target runs them without a kernel of its own:

- ``conv2d(x, w)``: the windows of ``x`` (``window``, im2col, written once because the product needs them in
  memory) as columns, multiplied by the weight matrix, per example ``[F, C*KH*KW] @ [C*KH*KW, OH*OW]``, which
  is NCHW as it comes out: nothing is transposed before or after. With groups, one product per group.
- its gradient with respect to ``x`` is a transposed convolution: the weights times the output gradient give
  each window's gradient, which ``unwindow`` (col2im) adds back into the image;
- its gradient with respect to ``w`` sums ``g [F, OH*OW] @ cols^T`` over the examples into one result
  (``contract_batch``), never holding one weight gradient per example;
- ``conv_transpose2d`` is conv2d's input gradient as an op, and its gradients are a conv2d and the same
  weight contraction with the roles swapped;
- ``conv1d`` is conv2d over a height of 1.

Weights are ``[F, C / groups, KH, KW]`` for a convolution and ``[C, F / groups, KH, KW]`` for a transposed one,
as in PyTorch, so weights can be compared one to one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from ..types import TensorType
from .linalg import swap_last
from .registry import AttrSpec, OpDef, register
from .windows import (
    output_size,
    pair,
    resolve_padding,
    unwindow_reference,
    window_reference,
)

CONV_ATTRS = (
    AttrSpec("stride", "axes", 1, doc="a number or [height, width]"),
    AttrSpec("padding", "padding", 0, doc="same, valid, a number, [height, width] or [top, bottom, left, right]"),
    AttrSpec("dilation", "axes", 1, doc="a number or [height, width]"),
    AttrSpec("groups", "int", 1, doc="channels are split into groups convolved apart (depthwise: groups = C)"),
)


def _geometry(op: str, image: tuple[int, int], kernel: tuple[int, int], attrs: dict) -> dict:
    stride = pair(attrs["stride"], "stride", op)
    dilation = pair(attrs["dilation"], "dilation", op)
    padding = resolve_padding(attrs["padding"], image, kernel, stride, dilation, op)
    return {**attrs, "stride": stride, "dilation": dilation, "padding": padding}


def _spatial(t: TensorType, op: str, what: str) -> tuple[int, int]:
    if t.rank != 4:
        raise ShapeError(f"{op}: {what} must be [N, C, H, W], got {t}")
    if any(isinstance(d, str) for d in t.shape[1:]):
        raise ShapeError(f"{op}: only the batch dimension of {t} may be symbolic")
    return t.shape[2], t.shape[3]


def window_of(attrs: dict, kernel: tuple[int, int], fill: float = 0.0) -> dict[str, Any]:
    return {"kernel": kernel, "stride": attrs["stride"], "dilation": attrs["dilation"],
            "padding": attrs["padding"], "fill": fill}


# ---------------------------------------------------------------- the pieces, shared by the ops and gradients


def convolve(b, x, w, attrs: dict):
    """conv2d: x [N, C, H, W], w [F, C/G, KH, KW] -> [N, F, OH, OW]: per example, the weight matrix times the
    windows as columns, ``[F, C*KH*KW] @ [C*KH*KW, OH*OW]``, which is already NCHW."""
    groups = attrs["groups"]
    f, cg, kh, kw = b.type(w).shape
    cols = b.window(x, **window_of(attrs, (kh, kw)))
    n, _, _, _, oh, ow = b.type(cols).shape
    depth = cg * kh * kw
    if groups == 1:
        y = b.matmul(b.reshape(w, shape=(f, depth)), b.reshape(cols, shape=(n, depth, oh * ow)))
    else:
        grouped = b.reshape(cols, shape=(n, groups, depth, oh * ow))
        y = b.matmul(b.reshape(w, shape=(groups, f // groups, depth)), grouped)  # [N, G, F/G, P]
    return b.reshape(y, shape=(n, f, oh, ow))


def convolve_transposed(b, x, w, attrs: dict, image: tuple[int, int]):
    """conv_transpose2d (conv2d's gradient with respect to its input): x [N, C, H, W], w [C, F/G, KH, KW]
    -> [N, F, image...], each input element spreading its weights over a window, the windows added up."""
    groups = attrs["groups"]
    c, fg, kh, kw = b.type(w).shape
    n, _, h, width = b.type(x).shape
    depth = fg * kh * kw
    if groups == 1:
        weights = b.transpose(b.reshape(w, shape=(c, depth)), axes=(1, 0))
        cols = b.matmul(weights, b.reshape(x, shape=(n, c, h * width)))  # [N, F*KH*KW, H*W]
    else:
        weights = swap_last(b, b.reshape(w, shape=(groups, c // groups, depth)))  # [G, F/G*KH*KW, C/G]
        cols = b.matmul(weights, b.reshape(x, shape=(n, groups, c // groups, h * width)))
    cols = b.reshape(cols, shape=(n, fg * groups, kh, kw, h, width))
    return b.unwindow(cols, **{k: v for k, v in window_of(attrs, (kh, kw)).items() if k != "fill"}, image=image)


def weight_gradient(b, x, g, attrs: dict, kernel: tuple[int, int]):
    """The gradient of conv2d's weight [F, C/G, KH, KW] from its input x and output gradient g: the sum over
    examples of ``g [F, OH*OW] @ cols^T [OH*OW, C*KH*KW]``, accumulated in one result (``contract_batch``)."""
    groups = attrs["groups"]
    cols = b.window(x, **window_of(attrs, kernel))
    n, c, _, _, oh, ow = b.type(cols).shape
    f = b.type(g).shape[1]
    depth = c // groups * kernel[0] * kernel[1]
    if groups == 1:
        rows_g = b.reshape(g, shape=(n, f, oh * ow))
        grad = b.contract_batch(rows_g, b.reshape(cols, shape=(n, depth, oh * ow)))  # [F, C*KH*KW]
        return b.reshape(grad, shape=(f, c, *kernel))
    grouped = b.reshape(cols, shape=(n, groups, depth, oh * ow))
    grouped_g = b.reshape(g, shape=(n, groups, f // groups, oh * ow))
    grad = b.sum(b.matmul(grouped_g, swap_last(b, grouped)), axis=0)  # [G, F/G, C/G*KH*KW]
    return b.reshape(grad, shape=(f, c // groups, *kernel))


# ---------------------------------------------------------------- conv2d


def _conv_normalize(types: list[TensorType], attrs: dict) -> dict:
    x, w = types
    image = _spatial(x, "conv2d", "x")
    _spatial(w, "conv2d", "the weight")
    return _geometry("conv2d", image, (w.shape[2], w.shape[3]), attrs)


def _check_channels(op: str, x: TensorType, w: TensorType, groups: int, per_group_in: int, total_out: int):
    if groups < 1:
        raise ShapeError(f"{op}: groups must be at least 1, got {groups}")
    c = x.shape[1]
    if c % groups or total_out % groups:
        raise ShapeError(f"{op}: groups={groups} must divide the input channels ({c}) and output channels "
                         f"({total_out}) of x {x} and weight {w}")
    if per_group_in * groups != c:
        raise ShapeError(f"{op}: x {x} has {c} channels, the weight {w} takes {per_group_in} per group "
                         f"(groups={groups}, so {per_group_in * groups} in all)")


def _conv_type(types: list[TensorType], attrs: dict, op: str = "conv2d") -> TensorType:
    x, w = types
    if not x.is_float or x.dtype != w.dtype:
        raise ShapeError(f"{op}: x {x} and weight {w} must be floats of one dtype")
    f, cg, kh, kw = w.shape
    _check_channels(op, x, w, attrs["groups"], cg, f)
    top, bottom, left, right = attrs["padding"]
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    oh = output_size(x.shape[2], kh, sh, dh, top, bottom, op)
    ow = output_size(x.shape[3], kw, sw, dw, left, right, op)
    return TensorType((x.shape[0], f, oh, ow), x.dtype)


def conv_reference(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    groups = attrs["groups"]
    f, cg, kh, kw = w.shape
    cols = window_reference([x], window_of(attrs, (kh, kw)))
    n, _, _, _, oh, ow = cols.shape
    cols = cols.reshape(n, groups, cg, kh, kw, oh, ow)
    out = np.einsum("ngcklhw,gfckl->ngfhw", cols, w.reshape(groups, f // groups, cg, kh, kw), optimize=True)
    return np.ascontiguousarray(out.reshape(n, f, oh, ow)).astype(x.dtype)


def _conv_flops(ts: list[TensorType], out: TensorType, attrs: dict) -> int:
    _, cg, kh, kw = ts[1].shape
    return 2 * out.numel() * cg * kh * kw


def _conv_grad(b, n, g):
    x, w = n.inputs
    kernel = tuple(b.type(w).shape[2:])
    image = tuple(b.type(x).shape[2:])
    return [lambda: convolve_transposed(b, g, w, n.attrs, image),
            lambda: weight_gradient(b, x, g, n.attrs, kernel)]


register(
    OpDef(
        name="conv2d",
        operands=("x", "w"),
        attrs=CONV_ATTRS,
        normalize=_conv_normalize,
        infer=_conv_type,
        forward=lambda args, at: conv_reference(args[0], args[1], at),
        grad=_conv_grad,
        decompose=lambda b, n: convolve(b, n.inputs[0], n.inputs[1], n.attrs),
        flops=_conv_flops,
        category="nn",
        formula="2-D cross-correlation of an NCHW image x with weights w [F, C/groups, KH, KW] (PyTorch's "
                "conv2d): the windows as rows (im2col) times the weight matrix",
        shape_rule="[N, C, H, W], [F, C/groups, KH, KW] -> [N, F, OH, OW], OH = (H + top + bottom - "
                   "dilation*(KH-1) - 1) // stride + 1",
    )
)

# ---------------------------------------------------------------- conv_transpose2d


def _transpose_normalize(types: list[TensorType], attrs: dict) -> dict:
    x, w = types
    image = _spatial(x, "conv_transpose2d", "x")
    _spatial(w, "conv_transpose2d", "the weight")
    if attrs["padding"] == "same":
        raise ShapeError("conv_transpose2d: padding is a number or a list (same is a conv2d's)")
    attrs = _geometry("conv_transpose2d", image, (w.shape[2], w.shape[3]), attrs)
    extra = pair(attrs["output_padding"], "output_padding", "conv_transpose2d", least=0)
    if any(e >= s for e, s in zip(extra, attrs["stride"], strict=True)):
        raise ShapeError(f"conv_transpose2d: output_padding {extra} must be smaller than the stride "
                         f"{attrs['stride']}")
    return {**attrs, "output_padding": extra}


def _transposed_image(x: TensorType, w: TensorType, attrs: dict) -> tuple[int, int]:
    top, bottom, left, right = attrs["padding"]
    size = []
    for n, k, s, d, before, after, extra in zip(x.shape[2:], w.shape[2:], attrs["stride"], attrs["dilation"],
                                                (top, left), (bottom, right), attrs["output_padding"],
                                                strict=True):
        out = (n - 1) * s - before - after + d * (k - 1) + extra + 1
        if out < 1:
            raise ShapeError(f"conv_transpose2d: padding {attrs['padding']} leaves no output from x {x} and "
                             f"weight {w}")
        size.append(out)
    return size[0], size[1]


def _transpose_type(types: list[TensorType], attrs: dict) -> TensorType:
    x, w = types
    if not x.is_float or x.dtype != w.dtype:
        raise ShapeError(f"conv_transpose2d: x {x} and weight {w} must be floats of one dtype")
    c, fg, _, _ = w.shape
    groups = attrs["groups"]
    _check_channels("conv_transpose2d", x, w, groups, c // groups if c % groups == 0 else c, fg * groups)
    if c != x.shape[1]:
        raise ShapeError(f"conv_transpose2d: x {x} has {x.shape[1]} channels, the weight {w} takes {c}")
    return TensorType((x.shape[0], fg * groups, *_transposed_image(x, w, attrs)), x.dtype)


def _transpose_reference(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    groups = attrs["groups"]
    c, fg, kh, kw = w.shape
    n, _, h, width = x.shape
    image = _transposed_image(TensorType(x.shape, "f64"), TensorType(w.shape, "f64"), attrs)
    cols = np.einsum("ngihw,giokl->ngoklhw", x.reshape(n, groups, c // groups, h, width),
                     w.reshape(groups, c // groups, fg, kh, kw), optimize=True)
    cols = np.ascontiguousarray(cols.reshape(n, groups * fg, kh, kw, h, width)).astype(x.dtype)
    return unwindow_reference([cols], {**window_of(attrs, (kh, kw)), "image": image})


def _transpose_grad(b, n, g):
    x, w = n.inputs
    kernel = tuple(b.type(w).shape[2:])
    return [lambda: convolve(b, g, w, n.attrs), lambda: weight_gradient(b, g, x, n.attrs, kernel)]


def _transpose_decomposition(b, n):
    x, w = n.inputs
    image = _transposed_image(b.type(x), b.type(w), n.attrs)
    return convolve_transposed(b, x, w, n.attrs, image)


register(
    OpDef(
        name="conv_transpose2d",
        operands=("x", "w"),
        attrs=(*CONV_ATTRS[:1], AttrSpec("padding", "padding", 0, doc="a number, [height, width] or "
                                         "[top, bottom, left, right], removed from the output's edges"),
               *CONV_ATTRS[2:], AttrSpec("output_padding", "axes", 0, doc="rows and columns added after the "
                                         "output (to pick among the sizes a stride maps to one input size)")),
        normalize=_transpose_normalize,
        infer=_transpose_type,
        forward=lambda args, at: _transpose_reference(args[0], args[1], at),
        grad=_transpose_grad,
        decompose=_transpose_decomposition,
        flops=lambda ts, out, at: 2 * ts[0].numel() * ts[1].shape[1] * ts[1].shape[2] * ts[1].shape[3],
        category="nn",
        formula="transposed convolution (PyTorch's conv_transpose2d), w [C, F/groups, KH, KW]: each input "
                "element spreads its weights over a window of the output, overlaps added (col2im); conv2d's "
                "gradient with respect to its input",
        shape_rule="[N, C, H, W] -> [N, F, OH, OW], OH = (H-1)*stride - top - bottom + dilation*(KH-1) + "
                   "output_padding + 1",
    )
)

# ---------------------------------------------------------------- conv1d


def _as_2d(attrs: dict) -> dict:
    """conv1d's attributes as a conv2d's over a height of 1."""
    top_bottom = (0, 0)
    left, right = attrs["padding"]
    return {"stride": (1, attrs["stride"]), "dilation": (1, attrs["dilation"]),
            "padding": (*top_bottom, left, right), "groups": attrs["groups"]}


def _conv1d_normalize(types: list[TensorType], attrs: dict) -> dict:
    x, w = types
    for t, what in ((x, "x"), (w, "the weight")):
        if t.rank != 3:
            raise ShapeError(f"conv1d: {what} must be [N, C, L], got {t}")
    if isinstance(x.shape[2], str):
        raise ShapeError(f"conv1d: the length of {x} must be a fixed number")
    stride, dilation = attrs["stride"], attrs["dilation"]
    for name, value in (("stride", stride), ("dilation", dilation)):
        if not isinstance(value, int) or value < 1:
            raise ShapeError(f"conv1d: {name} is a number of 1 or more, got {value}")
    padding = attrs["padding"]
    if isinstance(padding, tuple) and len(padding) == 1:
        padding = padding[0]
    if isinstance(padding, str):
        _, _, left, right = resolve_padding(padding, (1, x.shape[2]), (1, w.shape[2]), (1, stride),
                                            (1, dilation), "conv1d")
        padding = (left, right)
    elif isinstance(padding, int):
        padding = (padding, padding)
    if len(padding) != 2 or min(padding) < 0:
        raise ShapeError(f"conv1d: padding is same, valid, a number or [left, right], got {attrs['padding']}")
    return {**attrs, "padding": tuple(padding)}


def _conv1d_type(types: list[TensorType], attrs: dict) -> TensorType:
    x, w = types
    four = _conv_type([_unsqueezed(x), _unsqueezed(w)], _as_2d(attrs), "conv1d")
    return TensorType((four.shape[0], four.shape[1], four.shape[3]), four.dtype)


def _unsqueezed(t: TensorType) -> TensorType:
    return TensorType((t.shape[0], t.shape[1], 1, t.shape[2]), t.dtype)


def _conv1d_decomposition(b, n):
    x, w = (b.expand_dims(v, axis=(2,)) for v in n.inputs)
    y = convolve(b, x, w, _as_2d(n.attrs))
    return b.reshape(y, shape=n.type.shape)


def _conv1d_grad(b, n, g):
    x, w = n.inputs
    attrs = _as_2d(n.attrs)
    g4 = b.expand_dims(g, axis=(2,))
    x4, w4 = b.expand_dims(x, axis=(2,)), b.expand_dims(w, axis=(2,))
    kernel = (1, b.type(w).shape[2])
    image = (1, b.type(x).shape[2])
    return [lambda: b.reshape(convolve_transposed(b, g4, w4, attrs, image), shape=b.type(x).shape),
            lambda: b.reshape(weight_gradient(b, x4, g4, attrs, kernel), shape=b.type(w).shape)]


register(
    OpDef(
        name="conv1d",
        operands=("x", "w"),
        attrs=CONV_ATTRS,
        normalize=_conv1d_normalize,
        infer=_conv1d_type,
        forward=lambda args, at: conv_reference(args[0][:, :, None], args[1][:, :, None], _as_2d(at))[:, :, 0],
        grad=_conv1d_grad,
        decompose=_conv1d_decomposition,
        flops=lambda ts, out, at: 2 * out.numel() * ts[1].shape[1] * ts[1].shape[2],
        category="nn",
        formula="1-D cross-correlation of x [N, C, L] with w [F, C/groups, K]: conv2d over a height of 1",
        shape_rule="[N, C, L], [F, C/groups, K] -> [N, F, OL]",
    )
)
