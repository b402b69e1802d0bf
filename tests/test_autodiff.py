"""Reverse-mode autodiff: worked examples from the lectures, sums over paths, and the interface."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

import gradc


@pytest.fixture(params=["cpu", "reference"])
def target(request):
    """Every test here runs on both targets."""
    return request.param


def run(model: str, target: str, grad: bool = True, **inputs):
    return gradc.compile(ROOT / "models" / f"{model}.model", target=target).run(inputs, grad=grad)


def test_shared_subexpression(target):
    out = run("shared_subexpression", target, a=3.0, b=1.0, c=5.0)
    assert out["y"] == 35
    assert (out["grad/a"], out["grad/b"], out["grad/c"]) == (7, 24, 5)


def test_polynomial(target):
    out = run("polynomial", target, x=1.0, y=2.0)
    assert out["f"] == 12
    assert (out["grad/x"], out["grad/y"]) == (10, 7)


def test_lecture_losses_on_worked_scores(target):
    spec = gradc.loads(
        "model lecture\ninput s: f32[1, 3]\ninput y: i64[1]\n"
        "loss hinge_loss = hinge(s, y, delta=2)\nloss ce = cross_entropy(s, y)\n"
    )
    out = gradc.compile(spec, target=target).run({"s": np.array([[1.2, 5.0, 1.6]]), "y": np.array([0])})
    assert out["hinge_loss"] == pytest.approx(8.2, abs=1e-5)
    assert out["ce"] == pytest.approx(3.86, abs=0.01)
    assert out["ce"] == pytest.approx(np.log(np.exp([1.2, 5.0, 1.6]).sum()) - 1.2, rel=1e-6)


def test_gradient_sums_over_every_path(target):
    # x feeds three paths to f; df/dx = 2x + 3 + cos-free polynomial check: f = x*x + 3x + x
    spec = gradc.loads("model paths\ninput x: f64\noutput f = x*x + 3*x + x\n")
    out = gradc.compile(spec, target=target).run({"x": 2.0}, grad=True)
    assert out["grad/x"] == 2 * 2.0 + 3 + 1


def test_tiny_regression_backprop_by_hand(target):
    x, t = np.array([1.5, -0.5]), np.array([0.2, 0.9])
    out = run("tiny_regression", target, x=x, t=t)
    w1, b1, w2, b2, w3, b3 = 0.5, 0.0, -0.3, 0.1, 0.8, 0.0
    s = lambda z: 1 / (1 + np.exp(-z))
    h1 = s(w1 * x + b1)
    h2 = s(w2 * h1 + b2)
    f3 = w3 * h2 + b3
    d_f3 = 2 * (f3 - t) / len(x)
    d_h2 = d_f3 * w3
    d_z2 = d_h2 * h2 * (1 - h2)
    d_h1 = d_z2 * w2
    d_z1 = d_h1 * h1 * (1 - h1)
    np.testing.assert_allclose(out["L"], np.mean((f3 - t) ** 2), rtol=1e-6)
    expected = {"w3": (d_f3 * h2).sum(), "b3": d_f3.sum(), "w2": (d_z2 * h1).sum(), "b2": d_z2.sum(),
                "w1": (d_z1 * x).sum(), "b1": d_z1.sum()}
    for name, value in expected.items():
        np.testing.assert_allclose(out[f"grad/{name}"], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(out["grad/x"], d_z1 * w1, rtol=1e-5)


def test_several_losses_are_summed(target):
    spec = gradc.loads("model two\ninput x: f64\nloss a = x*x\nloss b = 3*x\n")
    out = gradc.compile(spec, target=target).run({"x": 1.5}, grad=True)
    assert out["grad/x"] == pytest.approx(2 * 1.5 + 3)


def test_unused_parameter_gets_zero_gradient(target):
    spec = gradc.loads("model z\ninput x: f64[N]\nparam w: f64[3] = ones\nparam unused: f64[2] = ones\n"
                       "loss L = mean(x) * sum(w)\n")
    out = gradc.compile(spec, target=target).run({"x": np.ones(4)}, grad=True)
    np.testing.assert_array_equal(out["grad/unused"], np.zeros(2))
    np.testing.assert_allclose(out["grad/w"], np.ones(3))


def test_gradients_need_an_objective(target):
    spec = gradc.loads("model nothing\ninput x: f32[N]\noutput y = x * 2\n")
    with pytest.raises(gradc.GradcError, match="nothing to differentiate"):
        gradc.compile(spec, target=target).run({"x": np.ones(3)}, grad=True)


def test_statement_order_is_free(target):
    shuffled = "loss L = mean((f - t)^2)\nf = w * x\nparam w: f64 = 2\ninput t: f64[N]\ninput x: f64[N]\nmodel m\n"
    program = gradc.compile(gradc.loads(shuffled), target=target)
    out = program.run({"x": np.array([1.0, 2.0]), "t": np.zeros(2)}, grad=True)
    assert out["L"] == pytest.approx((4 + 16) / 2)
    assert out["grad/w"] == pytest.approx((2 * 2 * 1 * 1 + 2 * 4 * 2) / 2)
