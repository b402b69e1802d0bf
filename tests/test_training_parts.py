"""Building blocks of training: learning-rate schedules and weight decay."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

import gradc
from gradc.compiler.passes import optimize
from gradc.compiler.passes.regularize import decayed_params, weight_decay
from gradc.runtime.reference import evaluate
from gradc.runtime.schedules import learning_rate


def test_schedules():
    assert [learning_rate("constant", 0.1, e) for e in range(3)] == [0.1, 0.1, 0.1]
    assert [learning_rate("step", 1.0, e, every=2, gamma=0.5) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert learning_rate("exponential", 0.001, 3, gamma=0.97) == pytest.approx(0.001 * 0.97**3)
    with pytest.raises(gradc.GradcError, match="did you mean 'step'"):
        learning_rate("stpe", 0.1, 0)


@pytest.mark.parametrize("model, decayed", [
    ("mlp_digits", ["logits.dense1.weight", "logits.dense2.weight", "logits.dense3.weight"]),
    ("logistic_regression", ["w"]),
    ("tiny_regression", ["w1", "w2", "w3"]),
])
def test_weights_are_decayed_and_biases_are_not(model, decayed):
    assert decayed_params(gradc.load(ROOT / "models" / f"{model}.model").graph) == decayed


def test_weight_decay_adds_lambda_w_to_each_weight_gradient():
    spec = gradc.load(ROOT / "models" / "logistic_regression.model")
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(8, 30)).astype(np.float64), "y": rng.integers(0, 2, 8).astype(np.float64)}
    params = {"w": rng.normal(size=30), "b": np.array(0.3)}
    from gradc.compiler.passes.precision import promote_float64

    plain = optimize(promote_float64(spec.graph))
    decayed = optimize(weight_decay(0.1)(promote_float64(spec.graph)))
    a = evaluate(plain, inputs, params, [plain.objective, plain.grads["w"], plain.grads["b"]])
    b = evaluate(decayed, inputs, params, [decayed.objective, decayed.grads["w"], decayed.grads["b"]])
    assert b[decayed.objective] == pytest.approx(a[plain.objective] + 0.05 * np.sum(params["w"] ** 2))
    np.testing.assert_allclose(b[decayed.grads["w"]], a[plain.grads["w"]] + 0.1 * params["w"], rtol=1e-12)
    np.testing.assert_allclose(b[decayed.grads["b"]], a[plain.grads["b"]], rtol=1e-12)
