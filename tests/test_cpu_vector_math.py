"""The cpu target's float32 exp, tanh and sigmoid (compiler/lower/cpu_vector_math.py): accuracy over their
whole range in float32 ulps, special values, and the exact C library path for other dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from gradc.compiler.lower import cpu_lib

MAX_ULPS = 4


def _exact_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


FUNCTIONS = {"exp": np.exp, "tanh": np.tanh, "sigmoid": _exact_sigmoid}


def _elementwise(name: str):
    function = getattr(cpu_lib, name)

    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = function(x[i])
        return out
    return apply


def _ulps(got: np.ndarray, want64: np.ndarray) -> np.ndarray:
    """|got - want| in float32 ulps of the exact value."""
    spacing = np.spacing(np.abs(want64).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want64) / spacing


@pytest.mark.parametrize("name, low, high", [("exp", -103.9, 88.72), ("tanh", -12.0, 12.0), ("sigmoid", -103.9, 30.0)])
def test_float32_within_a_few_ulps(name, low, high):
    x = np.concatenate([np.linspace(low, high, 400_001), np.geomspace(1e-30, 1.0, 20_001),
                        -np.geomspace(1e-30, 1.0, 20_001)]).astype(np.float32)
    x = x[(x >= low) & (x <= high)]
    got = _elementwise(name)(x)
    assert got.dtype == np.float32
    want = FUNCTIONS[name](x.astype(np.float64))
    worst = np.argmax(_ulps(got, want))
    assert _ulps(got, want)[worst] <= MAX_ULPS, (name, x[worst], got[worst], want[worst])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float32_special_values(name):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 1e30, -1e30, 88.8, -104.0], dtype=np.float32)
    got = _elementwise(name)(x)
    with np.errstate(over="ignore"):
        want = FUNCTIONS[name](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_other_dtypes_use_the_c_library(name):
    x = np.linspace(-20, 20, 1001)
    got = _elementwise(name)(x)
    want = {"exp": np.vectorize(math.exp), "tanh": np.vectorize(math.tanh),
            "sigmoid": _exact_sigmoid}[name](x)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
