"""Parameter initializers, declared once: their arguments (checked by the front end) and how they sample.

Fan-in and fan-out follow the layout ``x @ W`` with ``W`` of shape [in, out]:

- a scalar has fan_in = fan_out = 1; a vector of length n has fan_in = fan_out = n;
- a matrix [in, out] has fan_in = in, fan_out = out;
- a tensor [..., in, out] multiplies both by the product of the leading dimensions;
- a convolution's weight [out, in, *kernel] (PyTorch's layout; its layer records ``layout: conv`` in the spec)
  has fan_in = in * kernel size, fan_out = out * kernel size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ops.registry import AttrSpec

Sampler = Callable[[np.random.Generator, tuple[int, ...], dict[str, Any]], np.ndarray]


def fans(shape: tuple[int, ...], layout: str = "matmul") -> tuple[int, int]:
    if layout == "conv":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


@dataclass(frozen=True)
class Initializer:
    name: str
    attrs: tuple[AttrSpec, ...]
    sample: Sampler
    formula: str


def _xavier_uniform(rng, shape, kw):
    fan_in, fan_out = fans(shape, kw.get("layout", "matmul"))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _xavier_normal(rng, shape, kw):
    fan_in, fan_out = fans(shape, kw.get("layout", "matmul"))
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def _he_normal(rng, shape, kw):
    fan_in, _ = fans(shape, kw.get("layout", "matmul"))
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def _he_uniform(rng, shape, kw):
    fan_in, _ = fans(shape, kw.get("layout", "matmul"))
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


INITIALIZERS: dict[str, Initializer] = {
    init.name: init
    for init in (
        Initializer("constant", (AttrSpec("value", "float"),), lambda r, s, k: np.full(s, k["value"]),
                    "every entry = value (written as a bare number: param b: f32 = 0.1)"),
        Initializer("zeros", (), lambda r, s, k: np.zeros(s), "every entry 0"),
        Initializer("ones", (), lambda r, s, k: np.ones(s), "every entry 1"),
        Initializer("normal", (AttrSpec("std", "float", 1.0), AttrSpec("mean", "float", 0.0)),
                    lambda r, s, k: r.normal(k["mean"], k["std"], size=s), "N(mean, std^2)"),
        Initializer("uniform", (AttrSpec("low", "float", -0.05), AttrSpec("high", "float", 0.05)),
                    lambda r, s, k: r.uniform(k["low"], k["high"], size=s), "U(low, high)"),
        Initializer("xavier_uniform", (), _xavier_uniform, "U(-a, a), a = sqrt(6 / (fan_in + fan_out))"),
        Initializer("xavier_normal", (), _xavier_normal, "N(0, 2 / (fan_in + fan_out))"),
        Initializer("he_normal", (), _he_normal, "N(0, 2 / fan_in)"),
        Initializer("he_uniform", (), _he_uniform, "U(-a, a), a = sqrt(6 / fan_in)"),
    )
}


def initialize(spec: dict[str, Any], shape: tuple[int, ...], dtype: type, rng: np.random.Generator) -> np.ndarray:
    """Sample one parameter. ``spec`` is ``{"kind": name, **arguments}`` as the front end recorded it."""
    init = INITIALIZERS[spec["kind"]]
    args = {k: v for k, v in spec.items() if k != "kind"}
    return np.asarray(init.sample(rng, tuple(shape), args), dtype=dtype)
