"""Building blocks of training: learning-rate schedules and weight decay."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

import gradc
from gradc.compiler.passes import optimize
from gradc.compiler.passes.regularize import decayed_params, weight_decay
from gradc.runtime.execution.reference import evaluate
from gradc.runtime.training.schedules import learning_rate


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


SPLIT_MODEL = """model split
input x: f32[N, 3]
input y: i64[N]
param scale: f32 = 1.5
logits = x -> dense(4) -> relu -> dropout(0.25) -> dense(3)
loss L = cross_entropy(logits * scale, y)
"""


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_a_step_split_into_gradients_and_update_matches_the_fused_step(target, optimizer):
    """Item 6 of issue 13: gradients, an exchange (here: none), then the update, with nothing recompiled,
    equal one fused step: the same dropout masks, the same optimizer state, the same parameters."""
    spec = gradc.loads(SPLIT_MODEL)
    rng = np.random.default_rng(3)
    batch = {"x": rng.normal(size=(6, 3)).astype(np.float32), "y": rng.integers(0, 3, 6)}
    fused, split = (gradc.compile(spec, target=target, seed=1) for _ in range(2))
    for program in (fused, split):
        program.set_optimizer(optimizer, lr=0.05)
    for _ in range(3):
        fused.step(batch)
        grads = split.gradients(batch)
        split.apply_update(grads)
    assert split.optimizer.t == fused.optimizer.t == 3
    for name, value in fused.params.items():
        np.testing.assert_allclose(split.params[name], value, rtol=2e-6, atol=1e-7, err_msg=name)


def test_apply_update_names_a_missing_or_misshapen_gradient():
    program = gradc.compile(gradc.loads(SPLIT_MODEL), target="reference")
    with pytest.raises(gradc.GradcError, match="no gradient for parameter 'scale'"):
        program.apply_update({})
    grads = {f"grad/{name}": np.zeros_like(value) for name, value in program.params.items()}
    grads["grad/scale"] = np.zeros(2, np.float32)
    with pytest.raises(gradc.GradcError, match=r"gradient of 'scale' has shape \(2,\); the parameter has \(\)"):
        program.apply_update(grads)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_programs_training_state_moves_to_another_program_and_continues_identically(target):
    """The compiled program is code and its TrainingState is data: a copy of one program's state (parameters,
    adam's moments and step count, epoch, the dropout stream) put into a second program of the same model makes
    the two take identical steps."""
    import copy

    spec = gradc.loads(SPLIT_MODEL)
    rng = np.random.default_rng(5)
    batch = {"x": rng.normal(size=(6, 3)).astype(np.float32), "y": rng.integers(0, 3, 6)}
    first, second = gradc.compile(spec, target=target, seed=1), gradc.compile(spec, target=target, seed=7)
    first.set_optimizer("adam", lr=0.05)
    for _ in range(2):
        first.step(batch)
    first.host_params()
    second.state = copy.deepcopy(first.state)
    assert second.optimizer.t == 2 and second.optimizer.definition.name == "adam"
    losses = [(first.step(batch), second.step(batch)) for _ in range(3)]
    assert [a for a, _ in losses] == [b for _, b in losses]
    for name, value in first.params.items():
        np.testing.assert_array_equal(second.params[name], value, err_msg=name)
