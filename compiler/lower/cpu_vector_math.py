"""exp, tanh and sigmoid for the CPU target that LLVM can vectorize in float32.

Numba lowers ``math.exp`` and ``math.tanh`` to calls of the C library, one element at a time (about 10-20 ns
each here): the gate loop of an LSTM step spent 300 us on 20 K such calls. These versions are made of
multiplies, adds, one division and selects, so the loops that call them run eight lanes at a time (AVX2):
the same gate loop takes 35 us.

- ``exp``: ``2^n * e^r`` with ``n = round(x / ln 2)`` and ``r = x - n ln 2`` (ln 2 in two parts, so ``r`` is
  exact), ``e^r`` by its Taylor polynomial of degree 7 on ``|r| <= ln 2 / 2`` (truncation below 6e-9), ``2^n``
  as two factors built from their exponent bits (so that a subnormal result is rounded once).
- ``sigmoid``: ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)`` below, with ``e = exp(-|x|)``.
- ``tanh``: ``1 - 2 / (exp(2|x|) + 1)`` with x's sign, and for ``|x| < 0.3``, where that would cancel, its odd
  Taylor polynomial to ``x^13`` (truncation below 1e-10).

Relative error: at most 4 float32 ulps over the whole range (``tests/test_cpu_vector_math.py`` sweeps it).
NaN, infinities, overflow to inf and subnormal results are NumPy's. float64 (gradient checks) and integers keep the C
library: these are float32 functions only.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_f32 = np.float32
LOG2E = _f32(1.4426950408889634)
LN2_HIGH = _f32(0.693145751953125)  # ln 2's leading 16 bits: n * LN2_HIGH is exact for |n| < 2^8
LN2_LOW = _f32(1.4286067653301870e-06)  # ln 2 - LN2_HIGH
EXP_OVERFLOW = _f32(88.72283)  # above: exp is inf in float32
EXP_UNDERFLOW = _f32(-103.97208)  # below: exp is under half the smallest subnormal float32, 2^-150
EXP_TAYLOR = tuple(_f32(1.0 / math.factorial(k)) for k in range(8))  # e^r = sum r^k / k!
TANH_TAYLOR = tuple(_f32(c) for c in (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075))
TANH_SMALL = _f32(0.3)  # below: the Taylor polynomial (x + x^3 * ...), above: the exp form
INF = _f32(np.inf)
ZERO, ONE, TWO, HALF = _f32(0.0), _f32(1.0), _f32(2.0), _f32(0.5)
jit = njit(cache=True, nogil=True, error_model="numpy")


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@jit
def _polynomial(coefficients, x):
    """sum(coefficients[k] * x^k), by Horner's rule (a loop LLVM unrolls: the tuple's length is its type's)."""
    p = coefficients[-1]
    for k in range(len(coefficients) - 2, -1, -1):
        p = p * x + coefficients[k]
    return p


@jit
def exp32(x):
    clamped = min(max(x, EXP_UNDERFLOW), EXP_OVERFLOW)
    n = np.floor(clamped * LOG2E + HALF)
    r = clamped - n * LN2_HIGH - n * LN2_LOW
    p = _polynomial(EXP_TAYLOR, r)
    whole = np.int32(n)  # in [-150, 128]: 2^n in two normal halves, so that a subnormal result rounds once
    half = whole >> np.int32(1)
    value = p * _float32_from_bits((half + np.int32(127)) << np.int32(23))
    value = value * _float32_from_bits((whole - half + np.int32(127)) << np.int32(23))
    value = INF if x > EXP_OVERFLOW else value
    value = ZERO if x < EXP_UNDERFLOW else value
    return x if x != x else value  # NaN stays NaN


@jit
def sigmoid32(x):
    e = exp32(-abs(x))
    return ONE / (ONE + e) if x >= ZERO else e / (ONE + e)  # no cancellation, no overflow on either side


@jit
def tanh32(x):
    magnitude = abs(x)
    large = ONE - TWO / (exp32(TWO * magnitude) + ONE)
    s = x * x
    small = x + x * s * _polynomial(TANH_TAYLOR, s)
    return small if magnitude < TANH_SMALL else math.copysign(large, x)  # NaN: large is NaN


def _is_float32(x) -> bool:
    return isinstance(x, types.Float) and x.bitwidth == 32


def float32_fast(name: str, fast, exact, module: str):
    """A function named ``name`` (of ``module``, the library that exports it) for generated code: ``fast``
    for a float32 argument, ``exact`` (the shared scalar helper) for any other."""
    def function(x):
        return exact(x)
    function.__name__ = function.__qualname__ = name
    function.__module__ = module

    @overload(function, jit_options={"error_model": "numpy", "nogil": True})
    def _choose(x):
        if _is_float32(x):
            return lambda x: fast(x)
        return lambda x: exact(x)
    return function


FAST_FLOAT32 = {"exp": exp32, "tanh": tanh32, "sigmoid": sigmoid32}  # scalar helper -> its float32 version
