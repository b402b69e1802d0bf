"""Elementwise ops: arithmetic with NumPy broadcasting, math functions and activations.

Gradients are graph-building rules; autodiff sums a broadcast gradient back to its operand's shape.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from gradc.dsl.diagnostics import ShapeError

from ..constants import (
    GELU_SIGMOID_SCALE,
    HARD_SIGMOID_SLOPE,
    INV_SQRT_2PI,
    SELU_ALPHA,
    SELU_SCALE,
    SQRT_HALF,
    TWO_OVER_SQRT_PI,
)
from ..types import BOOL, DTYPES, FLOAT_DTYPES, NUMPY_DTYPES, TensorType, broadcast_shapes, promote
from .registry import AttrSpec, OpDef, register


def same_float_type(name: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        (t,) = types
        if not t.is_float:
            raise ShapeError(f"{name} expects a floating-point tensor, got {t}")
        return t

    return infer


def numeric_type(types: list[TensorType], attrs: dict) -> TensorType:
    """The operand's type, for ops on numbers (a bool tensor is turned into numbers first: gt(a, b) * 1.0)."""
    if types[0].is_bool:
        raise ShapeError(f"expected numbers, got {types[0]} (a comparison's result: multiply it by 1.0 first)")
    return types[0]


def broadcast_type(types: list[TensorType], attrs: dict) -> TensorType:
    if all(t.is_bool for t in types):
        shown = " and ".join(str(t) for t in types)
        raise ShapeError(f"arithmetic needs a number, got {shown} (a comparison's result: use where, or "
                         "multiply it by 1.0 first)")
    dtype = types[0].dtype
    for t in types[1:]:
        dtype = promote(dtype, t.dtype)
    return TensorType(broadcast_shapes(*types), dtype)


def float_broadcast_type(name: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        for t in types:
            if not t.is_float:
                raise ShapeError(f"{name} expects floating-point tensors, got {t}")
        return broadcast_type(types, attrs)

    return infer


def unary(name: str, forward, grad, formula: str, attrs=(), public=True, infer=None, scalar=None,
          normalize=None, zero_one: bool = False) -> OpDef:
    return register(
        OpDef(
            name=name,
            operands=("x",),
            infer=infer or same_float_type(name),
            forward=forward,
            grad=grad,
            attrs=attrs,
            normalize=normalize,
            public=public,
            category="elementwise" if public else "internal",
            formula=formula,
            shape_rule="same as x",
            scalar=scalar,
            zero_one=zero_one,
        )
    )


def binary(name: str, forward, grad, formula: str, infer=None, public=True, commutative=False, scalar=None,
           zero_one: bool = False) -> OpDef:
    """An elementwise op of two operands; both are converted to the result's dtype first (see ``casts``)."""
    return register(
        OpDef(
            name=name,
            operands=("a", "b"),
            infer=infer or broadcast_type,
            forward=forward,
            grad=grad,
            public=public,
            commutative=commutative,
            category="elementwise" if public else "internal",
            formula=formula,
            shape_rule="NumPy broadcast of a and b",
            scalar=scalar,
            casts=(0, 1),
            zero_one=zero_one,
        )
    )


# ---------------------------------------------------------------- arithmetic

binary("add", lambda a, at: a[0] + a[1], lambda b, n, g: [lambda: g, lambda: g], "a + b", commutative=True,
       scalar="({a} + {b})")
binary("sub", lambda a, at: a[0] - a[1], lambda b, n, g: [lambda: g, lambda: b.neg(g)], "a - b",
       scalar="({a} - {b})")
binary(
    "mul",
    lambda a, at: a[0] * a[1],
    lambda b, n, g: [lambda: b.mul(g, n.inputs[1]), lambda: b.mul(g, n.inputs[0])],
    "a * b",
    commutative=True,
    scalar="({a} * {b})",
)
binary(
    "div",
    lambda a, at: a[0] / a[1],
    lambda b, n, g: [
        lambda: b.div(g, n.inputs[1]),
        lambda: b.neg(b.div(b.mul(g, n.id), n.inputs[1])),
    ],
    "a / b",
    infer=float_broadcast_type("div"),
    scalar="({a} / {b})",
)


def _pow_forward(args, attrs):
    a, e = args
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(np.asarray(e).dtype, np.integer):
        return np.power(a.astype(np.float64), e)
    return np.power(a, e)


binary(
    "pow",
    _pow_forward,
    lambda b, n, g: [
        lambda: b.mul(g, b.mul(n.inputs[1], b.pow(n.inputs[0], b.sub(n.inputs[1], 1.0)))),
        lambda: b.mul(g, b.mul(n.id, b.log(n.inputs[0]))),
    ],
    "a ^ b (written a^b)",
    scalar="power({a}, {b})",
    infer=lambda ts, at: TensorType(broadcast_shapes(*ts),
                                    promote(promote(*(numeric_type([t], at).dtype for t in ts)), "f32")),
)
unary("neg", lambda a, at: -a[0], lambda b, n, g: [lambda: b.neg(g)], "negation (written -x)",
      infer=numeric_type, scalar="(-{x})")

# ---------------------------------------------------------------- math functions

unary("exp", lambda a, at: np.exp(a[0]), lambda b, n, g: [lambda: b.mul(g, n.id)], "e^x", scalar="exp({x})")
unary("log", lambda a, at: np.log(a[0]), lambda b, n, g: [lambda: b.div(g, n.inputs[0])], "natural log",
      scalar="log({x})")
unary(
    "sqrt",
    lambda a, at: np.sqrt(a[0]),
    lambda b, n, g: [lambda: b.div(g, b.mul(n.id, 2.0))],
    "square root",
    scalar="sqrt({x})",
)
unary(
    "abs",
    lambda a, at: np.abs(a[0]),
    lambda b, n, g: [lambda: b.mul(g, b.sign(n.inputs[0]))],
    "absolute value; gradient sign(x), 0 at 0",
    scalar="abs({x})",
)
unary("log1p", lambda a, at: np.log1p(a[0]), lambda b, n, g: [lambda: b.div(g, b.add(n.inputs[0], 1.0))],
      "log(1 + x), accurate for small x", scalar="math.log1p({x})")
unary("expm1", lambda a, at: np.expm1(a[0]), lambda b, n, g: [lambda: b.mul(g, b.add(n.id, 1.0))],
      "e^x - 1, accurate for small x", scalar="math.expm1({x})")
unary("sin", lambda a, at: np.sin(a[0]), lambda b, n, g: [lambda: b.mul(g, b.cos(n.inputs[0]))], "sine",
      scalar="math.sin({x})")
unary("cos", lambda a, at: np.cos(a[0]), lambda b, n, g: [lambda: b.neg(b.mul(g, b.sin(n.inputs[0])))], "cosine",
      scalar="math.cos({x})")
unary(
    "erf",
    lambda a, at: special.erf(a[0]).astype(a[0].dtype),
    lambda b, n, g: [lambda: b.mul(g, b.mul(b.exp(b.neg(b.mul(n.inputs[0], n.inputs[0]))), TWO_OVER_SQRT_PI))],
    "the error function, 2/sqrt(pi) * integral from 0 to x of e^(-t^2)",
    scalar="math.erf({x})",
)
unary(
    "clip",
    lambda a, at: np.clip(a[0], at["low"], at["high"]),
    lambda b, n, g: [lambda: b.mul(g, b.in_range(n.inputs[0], low=n.attrs["low"], high=n.attrs["high"]))],
    "min(max(x, low), high)",
    attrs=(AttrSpec("low", "float"), AttrSpec("high", "float")),
    scalar="min(max({x}, {low}), {high})",
)

# ---------------------------------------------------------------- activations


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


unary(
    "sigmoid",
    lambda a, at: _sigmoid(a[0]),
    lambda b, n, g: [lambda: b.mul(g, b.mul(n.id, b.sub(1.0, n.id)))],
    "1 / (1 + e^-x)",
    scalar="sigmoid({x})",
)
unary(
    "tanh",
    lambda a, at: np.tanh(a[0]),
    lambda b, n, g: [lambda: b.mul(g, b.sub(1.0, b.mul(n.id, n.id)))],
    "hyperbolic tangent",
    scalar="tanh({x})",
)
unary(
    "softsign",
    lambda a, at: (a[0] / (1.0 + np.abs(a[0]))).astype(a[0].dtype),
    lambda b, n, g: [lambda: b.div(g, b.pow(b.add(b.abs(n.inputs[0]), 1.0), 2.0))],
    "x / (1 + |x|)",
    scalar="({x} / (1.0 + abs({x})))",
)
unary(
    "relu",
    lambda a, at: np.maximum(a[0], 0).astype(a[0].dtype),
    lambda b, n, g: [lambda: b.mul(g, b.step(n.inputs[0]))],
    "max(x, 0)",
    scalar="relu({x})",
)
unary(
    "leaky_relu",
    lambda a, at: np.where(a[0] > 0, a[0], at["alpha"] * a[0]).astype(a[0].dtype),
    lambda b, n, g: [
        lambda: b.mul(g, b.add(b.mul(b.step(n.inputs[0]), 1.0 - n.attrs["alpha"]), n.attrs["alpha"]))
    ],
    "x if x > 0 else alpha * x",
    attrs=(AttrSpec("alpha", "float", 0.01),),
    scalar="({x} if {x} > 0 else {alpha} * {x})",
)


def _gelu(x: np.ndarray, approximate: bool) -> np.ndarray:
    if approximate:
        return (x * _sigmoid(GELU_SIGMOID_SCALE * x)).astype(x.dtype)
    return (0.5 * x * (1.0 + special.erf(x * SQRT_HALF))).astype(x.dtype)


def _gelu_derivative(x: np.ndarray, approximate: bool) -> np.ndarray:
    if approximate:
        s = _sigmoid(GELU_SIGMOID_SCALE * x)
        return (s + GELU_SIGMOID_SCALE * x * s * (1.0 - s)).astype(x.dtype)
    cdf = 0.5 * (1.0 + special.erf(x * SQRT_HALF))
    return (cdf + x * INV_SQRT_2PI * np.exp(-0.5 * x * x)).astype(x.dtype)


unary(
    "gelu",
    lambda a, at: _gelu(a[0], at["approximate"]),
    lambda b, n, g: [lambda: b.mul(g, b.gelu_grad(n.inputs[0], approximate=n.attrs["approximate"]))],
    "x * Phi(x) with Phi the normal CDF (erf); approximate=true: x * sigmoid(1.702 x)",
    attrs=(AttrSpec("approximate", "bool", False),),
    scalar="gelu({x}, {approximate})",
)
unary(
    "gelu_grad",
    lambda a, at: _gelu_derivative(a[0], at["approximate"]),
    None,
    "d gelu(x) / dx",
    attrs=(AttrSpec("approximate", "bool", False),),
    public=False,
    scalar="gelu_grad({x}, {approximate})",
)
unary(
    "softplus",
    lambda a, at: (_softplus(at["beta"] * a[0]) / at["beta"]).astype(a[0].dtype),
    lambda b, n, g: [lambda: b.mul(g, b.sigmoid(b.mul(n.inputs[0], n.attrs["beta"])))],
    "log(1 + e^(beta x)) / beta",
    attrs=(AttrSpec("beta", "float", 1.0),),
    scalar="(softplus({beta} * {x}) / {beta})",
)
unary(
    "swish",
    lambda a, at: (a[0] * _sigmoid(at["beta"] * a[0])).astype(a[0].dtype),
    lambda b, n, g: [lambda: _swish_grad(b, n, g)],
    "x * sigmoid(beta x)",
    attrs=(AttrSpec("beta", "float", 1.0),),
    scalar="({x} * sigmoid({beta} * {x}))",
)


def _swish_grad(b, n, g):
    beta = n.attrs["beta"]
    s = b.sigmoid(b.mul(n.inputs[0], beta))
    # d/dx x*s(beta x) = s + beta * y * (1 - s), with y = x * s the forward value
    return b.mul(g, b.add(s, b.mul(b.mul(n.id, beta), b.sub(1.0, s))))


# The exponential linear units. Each gradient reuses the forward value y: for x <= 0, y + scale*alpha is
# scale*alpha*e^x (celu: y/alpha + 1 = e^(x/alpha)).


def _elu_like(x: np.ndarray, alpha: float, scale: float, divisor: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / divisor))).astype(x.dtype)


def _below_zero_grad(b, n, g, slope_above: float, below) -> object:
    """g * (slope_above where x > 0, else below(y)): the gradient of a unit that is linear above 0."""
    above = b.step(n.inputs[0])
    return b.mul(g, b.add(b.mul(above, slope_above), b.mul(b.sub(1.0, above), below(n.id))))


unary(
    "elu",
    lambda a, at: _elu_like(a[0], at["alpha"], 1.0, 1.0),
    lambda b, n, g: [lambda: _below_zero_grad(b, n, g, 1.0, lambda y: b.add(y, n.attrs["alpha"]))],
    "x if x > 0 else alpha (e^x - 1)",
    attrs=(AttrSpec("alpha", "float", 1.0),),
    scalar="({x} if {x} > 0 else {alpha} * math.expm1({x}))",
)
unary(
    "selu",
    lambda a, at: _elu_like(a[0], SELU_ALPHA, SELU_SCALE, 1.0),
    lambda b, n, g: [lambda: _below_zero_grad(b, n, g, SELU_SCALE, lambda y: b.add(y, SELU_SCALE * SELU_ALPHA))],
    f"{SELU_SCALE:.4f} * (x if x > 0 else {SELU_ALPHA:.4f} (e^x - 1)), self-normalizing",
    scalar=f"({SELU_SCALE!r} * ({{x}} if {{x}} > 0 else {SELU_ALPHA!r} * math.expm1({{x}})))",
)
unary(
    "celu",
    lambda a, at: _elu_like(a[0], at["alpha"], 1.0, at["alpha"]),
    lambda b, n, g: [lambda: _below_zero_grad(b, n, g, 1.0, lambda y: b.add(b.div(y, n.attrs["alpha"]), 1.0))],
    "x if x > 0 else alpha (e^(x/alpha) - 1)",
    attrs=(AttrSpec("alpha", "float", 1.0),),
    normalize=lambda ts, at: _positive_alpha("celu", at),
    scalar="({x} if {x} > 0 else {alpha} * math.expm1({x} / {alpha}))",
)


def _positive_alpha(name: str, attrs: dict) -> dict:
    if not attrs["alpha"] > 0:
        raise ShapeError(f"{name}: alpha must be positive, got {attrs['alpha']}")
    return attrs


HARD_SIGMOID = f"min(max({{x}} * {HARD_SIGMOID_SLOPE!r} + 0.5, 0.0), 1.0)"


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x * HARD_SIGMOID_SLOPE + 0.5, 0.0, 1.0).astype(x.dtype)


def _hard_sigmoid_slope(b, x):
    """1/6 on [-3, 3], where hard_sigmoid is not clipped; 0 elsewhere."""
    return b.mul(b.in_range(x, low=-3.0, high=3.0), HARD_SIGMOID_SLOPE)


unary(
    "hard_sigmoid",
    lambda a, at: _hard_sigmoid(a[0]),
    lambda b, n, g: [lambda: b.mul(g, _hard_sigmoid_slope(b, n.inputs[0]))],
    "clip(x / 6 + 1/2, 0, 1), a piecewise-linear sigmoid",
    scalar=HARD_SIGMOID,
)
unary(
    "hard_swish",
    lambda a, at: (a[0] * _hard_sigmoid(a[0])).astype(a[0].dtype),
    lambda b, n, g: [lambda: b.mul(g, b.add(b.hard_sigmoid(n.inputs[0]),
                                            b.mul(n.inputs[0], _hard_sigmoid_slope(b, n.inputs[0]))))],
    "x * hard_sigmoid(x)",
    scalar=f"({{x}} * {HARD_SIGMOID})",
)


def _mish_grad(b, n, g):
    x = n.inputs[0]
    t = b.tanh(b.softplus(x))
    # d/dx x tanh(softplus(x)) = t + x (1 - t^2) sigmoid(x)
    return b.mul(g, b.add(t, b.mul(b.mul(x, b.sub(1.0, b.mul(t, t))), b.sigmoid(x))))


unary(
    "mish",
    lambda a, at: (a[0] * np.tanh(_softplus(a[0]))).astype(a[0].dtype),
    lambda b, n, g: [lambda: _mish_grad(b, n, g)],
    "x * tanh(softplus(x))",
    scalar="({x} * tanh(softplus({x})))",
)


def _extremum_grad(b, n, g, larger: bool):
    """The gradient goes to the operand that is the result; a tie splits it in half (as PyTorch does)."""
    a, c = n.inputs
    wins = b.add(b.step(b.sub(a, c) if larger else b.sub(c, a)), b.mul(b.eq_mask(a, c), 0.5))
    return [lambda: b.mul(g, wins), lambda: b.mul(g, b.sub(1.0, wins))]


binary("maximum", lambda a, at: np.maximum(a[0], a[1]), lambda b, n, g: _extremum_grad(b, n, g, True),
       "the larger of a and b, elementwise", commutative=True, scalar="max({a}, {b})")
binary("minimum", lambda a, at: np.minimum(a[0], a[1]), lambda b, n, g: _extremum_grad(b, n, g, False),
       "the smaller of a and b, elementwise", commutative=True, scalar="min({a}, {b})")

# ---------------------------------------------------------------- dtype conversion


def _cast_grad(b, n, g):
    source = b.type(n.inputs[0]).dtype
    if source not in FLOAT_DTYPES or n.attrs["dtype"] not in FLOAT_DTYPES:
        return [None]  # through an integer the value is piecewise constant: no gradient
    return [lambda: b.cast(g, dtype=source)]


unary(
    "cast",
    lambda a, at: a[0].astype(NUMPY_DTYPES[at["dtype"]]),
    _cast_grad,
    "x converted to dtype (float to integer truncates toward zero); inserted by the promotion rule",
    attrs=(AttrSpec("dtype", "dtype", choices=DTYPES),),
    public=False,
    infer=lambda ts, at: TensorType(ts[0].shape, at["dtype"]),
    scalar="{dtype}({x})",
)

# ---------------------------------------------------------------- helpers used by gradients

unary("step", lambda a, at: (a[0] > 0).astype(a[0].dtype), None, "1 if x > 0 else 0", public=False,
      scalar="(1.0 if {x} > 0 else 0.0)", zero_one=True)
unary("sign", lambda a, at: np.sign(a[0]), lambda b, n, g: [None], "-1, 0 or 1 by the sign of x; no gradient (0 almost "
      "everywhere)", scalar="sign({x})")
unary(
    "in_range",
    lambda a, at: ((a[0] >= at["low"]) & (a[0] <= at["high"])).astype(a[0].dtype),
    None,
    "1 if low <= x <= high else 0",
    attrs=(AttrSpec("low", "float"), AttrSpec("high", "float")),
    public=False,
    scalar="(1.0 if {low} <= {x} <= {high} else 0.0)",
    zero_one=True,
)
binary(
    "eq_mask",
    lambda a, at: (a[0] == a[1]).astype(np.result_type(a[0], a[1])),
    None,
    "1 if a == b else 0, in the operands' dtype",
    public=False,
    commutative=True,
    scalar="(1.0 if {a} == {b} else 0.0)",
    zero_one=True,
)

# ---------------------------------------------------------------- comparisons and selection


def _comparison_type(name: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        if any(t.is_bool for t in types):
            raise ShapeError(f"{name} compares numbers, got {types[0]} and {types[1]}")
        return TensorType(broadcast_shapes(*types), BOOL)

    return infer


def comparison(name: str, forward, symbol: str, commutative: bool = False) -> OpDef:
    """``a <symbol> b`` elementwise, with NumPy broadcasting: a bool tensor (no gradient), for ``where``. Mixed
    dtypes compare by value, as NumPy does."""
    return register(
        OpDef(
            name=name,
            operands=("a", "b"),
            infer=_comparison_type(name),
            forward=lambda a, at: np.asarray(forward(a[0], a[1])),
            grad=lambda b, n, g: [None, None],
            commutative=commutative,
            formula=f"a {symbol} b, a bool tensor",
            shape_rule="NumPy broadcast of a and b",
            scalar=f"({{a}} {symbol} {{b}})",
        )
    )


comparison("lt", np.less, "<")
comparison("le", np.less_equal, "<=")
comparison("gt", np.greater, ">")
comparison("ge", np.greater_equal, ">=")
comparison("eq", np.equal, "==", commutative=True)


def _where_type(types: list[TensorType], attrs: dict) -> TensorType:
    cond, a, b = types
    if not cond.is_bool:
        raise ShapeError(f"where expects a bool condition (a comparison such as gt(a, b)), got {cond}")
    if a.is_bool or b.is_bool:
        raise ShapeError(f"where selects between numbers, got {a} and {b}")
    return TensorType(broadcast_shapes(cond, a, b), promote(a.dtype, b.dtype))


register(
    OpDef(
        name="where",
        operands=("cond", "a", "b"),
        infer=_where_type,
        forward=lambda a, at: np.where(a[0], a[1], a[2]),
        # the gradient flows to the operand each element was taken from
        grad=lambda b, n, g: [None, lambda: b.where(n.inputs[0], g, 0.0), lambda: b.where(n.inputs[0], 0.0, g)],
        formula="a where cond, else b (elementwise, broadcast)",
        shape_rule="NumPy broadcast of cond, a and b",
        scalar="({a} if {cond} else {b})",
        casts=(1, 2),
    )
)
