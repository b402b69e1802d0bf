"""The scalar helpers that op templates call (``sigmoid({x})``, ``gelu({x}, {approximate})``, ...), written once
as plain Python and compiled by each target: ``cpu_lib`` with ``@njit``, ``cuda_lib`` as device functions.

A helper calls only ``math``, the constants of ``compiler/constants.py`` and the helpers listed before it in
:data:`HELPERS`; :func:`compile_helpers` binds those names to the target's compiled versions.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

from ..constants import EPS, GELU_SIGMOID_SCALE, INV_SQRT_2PI, LOG_FLOOR, SQRT_HALF


def exp(x):
    return math.exp(x)


def tanh(x):
    return math.tanh(x)


def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def relu(x):
    return x if x > 0 else x * 0


def log(x):
    """log x, -inf at 0 and NaN below, as NumPy gives (math.log would raise on the CPU)."""
    if x > 0:
        return math.log(x)
    if x == 0:
        return -math.inf
    return math.nan


def sqrt(x):
    return math.sqrt(x) if x >= 0 else math.nan


def power(a, b):
    return a**b


def sign(x):
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0


def gelu(x, approximate):
    if approximate:
        return x * sigmoid(GELU_SIGMOID_SCALE * x)
    return 0.5 * x * (1.0 + math.erf(x * SQRT_HALF))


def gelu_grad(x, approximate):
    if approximate:
        s = sigmoid(GELU_SIGMOID_SCALE * x)
        return s + GELU_SIGMOID_SCALE * x * s * (1.0 - s)
    return 0.5 * (1.0 + math.erf(x * SQRT_HALF)) + x * INV_SQRT_2PI * math.exp(-0.5 * x * x)


def clamped_log(x):
    return max(math.log(x), LOG_FLOOR) if x > 0 else LOG_FLOOR


def bce_grad(p, y):
    return (p - y) / max(p * (1.0 - p), EPS)


def logit(p):
    return clamped_log(p) - clamped_log(1.0 - p)


# in dependency order: a helper comes after those it calls
HELPERS: tuple[Callable[..., Any], ...] = (exp, tanh, sigmoid, softplus, relu, log, sqrt, power, sign, gelu, gelu_grad,
                                           clamped_log, bce_grad, logit)


def compile_helpers(compile_one: Callable[[Callable[..., Any]], Any], module: str) -> dict[str, Any]:
    """Every helper compiled by ``compile_one`` (``njit(...)`` or a device-function decorator), as a copy whose
    module is ``module`` (the target library that exports it) and whose calls to earlier helpers go to their
    compiled versions."""
    compiled: dict[str, Any] = {}
    for helper in HELPERS:
        namespace = {**helper.__globals__, **compiled}
        copy = types.FunctionType(helper.__code__, namespace, helper.__name__, helper.__defaults__,
                                  helper.__closure__)
        copy.__module__, copy.__qualname__, copy.__doc__ = module, helper.__qualname__, helper.__doc__
        compiled[helper.__name__] = compile_one(copy)
    return compiled
