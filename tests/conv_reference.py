"""Convolution and pooling by their definitions, one output element at a time: the independent references the
op tests check the registry's vectorized NumPy forwards (and so every target) against."""

from __future__ import annotations

import itertools

import numpy as np


def pads(padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding,) * 4
    return (padding[0], padding[0], padding[1], padding[1]) if len(padding) == 2 else tuple(padding)


def conv2d(x, w, stride=1, padding=0, dilation=1, groups=1):
    """y[n, f, i, j] = sum over c in f's group, p, q of w[f, c, p, q] * x[n, c, s*i + d*p - top, s*j + d*q - left]."""
    s, d = (stride, stride) if isinstance(stride, int) else stride, (dilation, dilation) if isinstance(
        dilation, int) else dilation
    top, bottom, left, right = pads(padding)
    n, _, h, width = x.shape
    f, cg, kh, kw = w.shape
    oh = (h + top + bottom - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (width + left + right - d[1] * (kw - 1) - 1) // s[1] + 1
    y = np.zeros((n, f, oh, ow))
    for b, o, i, j in itertools.product(range(n), range(f), range(oh), range(ow)):
        group = o // (f // groups)
        for ci, p, q in itertools.product(range(cg), range(kh), range(kw)):
            r, col = s[0] * i + d[0] * p - top, s[1] * j + d[1] * q - left
            if 0 <= r < h and 0 <= col < width:
                y[b, o, i, j] += w[o, ci, p, q] * x[b, group * cg + ci, r, col]
    return y


def conv_transpose2d(x, w, stride=1, padding=0, output_padding=0, groups=1):
    """Each x[n, c, i, j] adds w[c, f, p, q] * x into y[n, group's f, s*i + p - top, s*j + q - left]."""
    s = (stride, stride) if isinstance(stride, int) else stride
    extra = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
    top, bottom, left, right = pads(padding)
    n, c, h, width = x.shape
    _, fg, kh, kw = w.shape
    oh = (h - 1) * s[0] - top - bottom + kh + extra[0]
    ow = (width - 1) * s[1] - left - right + kw + extra[1]
    y = np.zeros((n, fg * groups, oh, ow))
    cg = c // groups
    for b, ci, i, j, fo, p, q in itertools.product(range(n), range(c), range(h), range(width), range(fg),
                                                    range(kh), range(kw)):
        r, col = s[0] * i + p - top, s[1] * j + q - left
        if 0 <= r < oh and 0 <= col < ow:
            y[b, (ci // cg) * fg + fo, r, col] += w[ci, fo, p, q] * x[b, ci, i, j]
    return y


def pool2d(x, kernel, stride=None, padding=0, kind="max", count_include_pad=False):
    """Floor-mode pooling by definition: the max or the mean of each window's image elements."""
    stride = stride or kernel
    n, c, h, width = x.shape
    oh = (h + 2 * padding - kernel) // stride + 1
    ow = (width + 2 * padding - kernel) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for b, ch, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        values = [x[b, ch, r, col]
                  for r in range(stride * i - padding, stride * i - padding + kernel)
                  for col in range(stride * j - padding, stride * j - padding + kernel)
                  if 0 <= r < h and 0 <= col < width]
        if kind == "max":
            y[b, ch, i, j] = max(values)
        else:
            y[b, ch, i, j] = sum(values) / (kernel * kernel if count_include_pad else len(values))
    return y
