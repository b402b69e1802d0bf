"""The tiny models of issue 11 (wrong numbers with exit status 0), on every target: identity transposes, scalar
constants, mixed dtypes, matrix products whose batch dimensions broadcast, 0-d results, and number literals."""

from __future__ import annotations

import numpy as np
import pytest

import gradc
from gradc.compiler.passes import optimize

TARGETS = ["reference", "cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def run(write_model, target: str, text: str, inputs: dict, grad: bool = True) -> dict:
    spec = gradc.load(write_model("model m\n" + text))
    return gradc.compile(spec, target=target, seed=0).run(inputs, grad=grad)


def assert_result(result: dict, key: str, value, dtype: str | None = None) -> None:
    got = np.asarray(result[key])
    want = np.asarray(value)
    assert got.shape == want.shape, f"{key}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=key)
    if dtype is not None:
        assert got.dtype == np.dtype(dtype), f"{key}: {got.dtype}, expected {dtype}"


# ---------------------------------------------------------------- A: identity transposes


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("axes", ["[0, 1]", "[-2, -1]"])
def test_identity_transpose_keeps_the_axes(write_model, target, axes):
    out = run(write_model, target, f"input x: f64[N, 3]\ninput c: f64[3]\nloss L = sum(transpose(x, {axes}) * c)\n"
              f"output o = transpose(x, {axes})\n", {"x": X, "c": [1.0, 2.0, 3.0]})
    assert_result(out, "L", 46.0)
    assert_result(out, "grad/c", [5.0, 7.0, 9.0])
    assert_result(out, "o", X)


@pytest.mark.parametrize("target", TARGETS)
def test_identity_transpose_feeding_a_matmul(write_model, target):
    text = "input x: f64[N, 3]\nparam w: f64[3, 2] = 0.5\noutput o = transpose(x, [0, 1]) @ w\n"
    out = run(write_model, target, text, {"x": X}, grad=False)
    assert_result(out, "o", X @ np.full((3, 2), 0.5))


def test_identity_transposes_leave_the_graph(write_model):
    spec = gradc.load(write_model("model m\ninput x: f64[N, 3]\noutput o = transpose(x, [-2, -1]) * 2\n"))
    assert "transpose" not in {n.op for n in optimize(spec.graph).nodes()}


# ---------------------------------------------------------------- B: scalar constants read outside loops


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("text", "expected"), [
    ("loss L = 0.5 * s", {"L": 1.0, "grad/s": 0.5}),
    ("loss L = mse(s, 2)", {"L": 0.0, "grad/s": 0.0}),
    ("loss L = s", {"L": 2.0, "grad/s": 1.0}),
    ("param w: f64 = 1\nloss L = s + w", {"L": 3.0, "grad/s": 1.0, "grad/w": 1.0}),
    ("output o = 2", {"o": 2.0}),
], ids=["half", "mse", "identity", "plus-param", "constant-output"])
def test_scalar_constants(write_model, target, text, expected):
    out = run(write_model, target, f"input s: f64\n{text}\n", {"s": np.float64(2.0)})
    for key, value in expected.items():
        assert_result(out, key, value, "float64")


# ---------------------------------------------------------------- C: mixed dtypes


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("a_dtype", ["f32", "i64"])
def test_matmul_of_mixed_dtypes_promotes(write_model, target, a_dtype):
    a = X.astype(np.float32 if a_dtype == "f32" else np.int64)
    out = run(write_model, target, f"input a: {a_dtype}[N, 3]\nparam w: f64[3, 2] = 0.5\noutput o = a @ w\n",
              {"a": a}, grad=False)
    assert_result(out, "o", X @ np.full((3, 2), 0.5), "float64")


@pytest.mark.parametrize("target", TARGETS)
def test_loss_of_f32_prediction_and_f64_target(write_model, target):
    """The loss is f64 (f32 with f64 gives f64), and every gradient has its variable's dtype."""
    x = X.astype(np.float32)
    t = np.ones((2, 2))
    out = run(write_model, target, "input x: f32[N, 3]\nparam w: f32[3, 2] = 0.5\ninput t: f64[N, 2]\n"
              "loss L = mse(x @ w, t)\n", {"x": x, "t": t})
    p = X @ np.full((3, 2), 0.5)
    assert_result(out, "L", np.mean((p - t) ** 2), "float64")
    assert out["grad/w"].dtype == np.float32 and out["grad/x"].dtype == np.float32
    assert out["grad/t"].dtype == np.float64
    np.testing.assert_allclose(out["grad/w"], X.T @ (2 * (p - t) / 4), rtol=1e-6)


def test_promotion_is_explicit_in_the_graph(write_model):
    spec = gradc.load(write_model("model m\ninput a: f32[N, 3]\nparam w: f64[3, 2] = 0.5\noutput o = a @ w\n"))
    casts = [n for n in spec.graph.nodes() if n.op == "cast"]
    assert [(str(spec.graph.node(c.inputs[0]).type), c.attrs["dtype"]) for c in casts] == [("f32[N,3]", "f64")]


# ---------------------------------------------------------------- D: batch dimensions that broadcast


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("a_type", "b_type", "b_is_param"), [
    ("f64[N, 2, 3]", "f64[1, 3, 2]", True),
    ("f64[1, N, 4]", "f64[N, 4, 3]", False),
    ("f32[3, 1, 3, 4]", "f32[1, 2, 4, 2]", False),
], ids=["param-batch-1", "batch-1-left", "both-broadcast"])
def test_matmul_batch_dimensions_broadcast(write_model, target, a_type, b_type, b_is_param):
    rng = np.random.default_rng(0)
    shape = lambda t: tuple(2 if d == "N" else int(d) for d in t[4:-1].split(", "))
    dtype = np.float32 if a_type.startswith("f32") else np.float64
    a = rng.normal(size=shape(a_type)).astype(dtype)
    b_decl = f"param b: {b_type} = 0.5" if b_is_param else f"input b: {b_type}"
    inputs = {"a": a} if b_is_param else {"a": a, "b": rng.normal(size=shape(b_type)).astype(dtype)}
    out = run(write_model, target, f"input a: {a_type}\n{b_decl}\nloss L = sum(a @ b)\noutput o = a @ b\n", inputs)
    b = np.full(shape(b_type), 0.5, dtype) if b_is_param else inputs["b"]
    np.testing.assert_allclose(out["o"], np.matmul(a, b), rtol=1e-5)
    # d sum(a @ b) / da = ones @ b^T, summed over the axes a was broadcast along
    grad_a = np.matmul(np.ones_like(np.matmul(a, b)), np.swapaxes(b, -1, -2))
    grad_a = grad_a.sum(axis=tuple(range(grad_a.ndim - a.ndim)))
    grad_a = grad_a.sum(axis=tuple(i for i, d in enumerate(a.shape) if d == 1 and grad_a.shape[i] != 1),
                        keepdims=True)
    np.testing.assert_allclose(out["grad/a"], grad_a, rtol=1e-5)


# ---------------------------------------------------------------- E: 0-d results


@pytest.mark.parametrize("target", TARGETS)
def test_zero_d_results_stay_zero_d(write_model, target):
    out = run(write_model, target, "input s: f64\nparam w: f64 = 1.5\noutput o = s\nloss L = s * w\n",
              {"s": np.float64(2.0)})
    for key in ("o", "L", "grad/w", "grad/s"):
        assert np.asarray(out[key]).shape == (), key
    assert_result(out, "grad/w", 2.0)


# ---------------------------------------------------------------- F: literals exact in their final dtype


@pytest.mark.parametrize("target", TARGETS)
def test_number_literals_are_exact_in_f64(write_model, target):
    out = run(write_model, target, "input x: f64\ninput k: i32\noutput a = x * (0.1 * 3)\noutput b = x / sqrt(2)\n"
              "output c = x * (k * 0.1)\n", {"x": np.float64(1.0), "k": np.int32(3)}, grad=False)
    assert out["a"] == 0.1 * 3
    assert out["b"] == 1.0 / np.sqrt(2.0)
    assert out["c"] == 3 * 0.1


@pytest.mark.parametrize("target", TARGETS)
def test_float_literal_with_integers_in_an_f32_model(write_model, target):
    """In a model with f32 values, a float number that meets only integers is f32 (the model's float dtype)."""
    out = run(write_model, target, "input x: f32\ninput k: i32\noutput c = k * 0.1\noutput d = x * (k * 0.1)\n",
              {"x": np.float32(1.0), "k": np.int32(3)}, grad=False)
    assert out["c"].dtype == np.float32 and out["c"] == np.float32(3) * np.float32(0.1)
    assert out["d"] == np.float32(3) * np.float32(0.1)


def test_number_out_of_its_dtype_is_a_located_error(write_model, cli):
    path = write_model("model m\ninput k: i32[N]\noutput o = k * 3000000000\n")
    result = cli("check", path)
    assert result.code == 1
    assert "m.model:3:" in result.err and "3000000000 is out of range for i32" in result.err


def test_constant_expression_overflow_is_a_located_error(write_model, cli):
    path = write_model("model m\ninput x: f64[N]\noutput o = x * exp(1000)\n")
    result = cli("check", path)
    assert result.code == 1
    assert "m.model:3:" in result.err and "finite" in result.err
