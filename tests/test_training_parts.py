"""Building blocks of training: learning-rate schedules, weight decay and gradient clipping."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ROOT

import gradc
from gradc.compiler.passes import optimize
from gradc.compiler.passes.regularize import decayed_params, weight_decay
from gradc.runtime.execution.reference import evaluate
from gradc.runtime.training.schedules import Position, learning_rate


def test_schedules():
    assert [learning_rate("constant", 0.1, e) for e in range(3)] == [0.1, 0.1, 0.1]
    assert [learning_rate("step", 1.0, e, every=2, gamma=0.5) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert learning_rate("exponential", 0.001, 3, gamma=0.97) == pytest.approx(0.001 * 0.97**3)
    with pytest.raises(gradc.GradcError, match="did you mean 'step'"):
        learning_rate("stpe", 0.1, 0)


def test_warmup_rises_linearly_per_step_and_cosine_decays_to_its_final_rate():
    at = lambda epoch, step, steps=4, epochs=10: Position(epoch, step, steps, epochs)
    # warmup over 2 epochs of 4 steps: 1/8, 2/8, ... of the rate, then the rate
    assert [learning_rate("warmup", 0.8, at(e, s), epochs=2) for e in range(3) for s in (1, 4)] == \
        pytest.approx([0.1, 0.4, 0.5, 0.8, 0.8, 0.8])
    # cosine without warmup: the full rate at the first step, half way at the middle, near final at the end
    cosine = lambda e, s: learning_rate("cosine", 1.0, at(e, s), final=0.1)
    assert cosine(0, 1) == 1.0
    assert cosine(5, 1) == pytest.approx(0.55)
    assert cosine(9, 4) == pytest.approx(0.1 + 0.9 * (1 + np.cos(np.pi * 39 / 40)) / 2)
    assert all(cosine(e, s) > cosine(e, s + 1) for e in range(10) for s in range(1, 4))
    # with one epoch of warmup: rising through epoch 0, then the cosine over the other 9 epochs
    warm = lambda e, s: learning_rate("cosine", 1.0, at(e, s), warmup=1)
    assert [warm(0, s) for s in range(1, 5)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warm(1, 1) == 1.0 and warm(9, 4) == pytest.approx((1 + np.cos(np.pi * 35 / 36)) / 2)


@pytest.mark.parametrize(("setting", "message"), [
    ("cosine(final=2)", "argument 'final' of cosine must be in [0, 1], got 2"),
    ("warmup(epochs=0)", "argument 'epochs' of warmup must be > 0, got 0"),
    ("cosine(warmup=-1)", "argument 'warmup' of cosine must be >= 0, got -1"),
])
def test_impossible_schedule_arguments_are_errors_at_the_value(setting, message):
    with pytest.raises(gradc.ModelError, match=re.escape(message)) as error:
        gradc.loads(f"model m\ninput x: f32[N, 2]\noutput y = x * 2\ntrain {{\n  schedule = {setting}\n}}\n")
    assert error.value.location.line == 5


CLIPPED = """model clipped
input x: f32[N, 3]
input y: i64[N]
logits = x -> dense(4) -> tanh -> dense(3)
loss L = cross_entropy(logits, y)
"""


@pytest.mark.parametrize("target", ["reference", pytest.param("cpu", marks=pytest.mark.slow)])  # cpu: 3 compiles
def test_clip_norm_scales_the_gradients_to_the_global_norm_and_leaves_small_ones_alone(target):
    rng = np.random.default_rng(2)
    batch = {"x": rng.normal(size=(5, 3)).astype(np.float32) * 4, "y": rng.integers(0, 3, 5)}
    plain = gradc.compile(gradc.loads(CLIPPED), target=target, seed=3)
    raw = {k: v for k, v in plain.gradients(batch).items() if k.removeprefix("grad/") in plain.params}
    norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in raw.values())))
    for limit in (norm / 3, norm * 2):
        clipped = gradc.compile(gradc.loads(CLIPPED), target=target, seed=3)
        clipped.set_clip_norm(limit)
        grads = clipped.gradients(batch)
        for name, value in raw.items():
            np.testing.assert_allclose(grads[name], value * min(1.0, limit / norm), rtol=2e-5, atol=1e-7)
        before = {k: v.copy() for k, v in clipped.params.items()}
        clipped.step(batch, lr=0.1)  # the fused step applies the same clipped gradients
        for name, value in before.items():
            np.testing.assert_allclose(clipped.params[name], value - 0.1 * grads[f"grad/{name}"], rtol=2e-5,
                                       atol=1e-6)


def test_clip_norm_is_a_stage_of_the_training_graph_and_a_checked_setting(cli, tmp_path):
    path = tmp_path / "c.model"
    path.write_text(CLIPPED + "train {\n  data = iris\n  clip_norm = 1.5\n}\n")
    shown = cli("graph", str(path), "--train", "--stage", "clip-norm")
    assert shown.code == 0 and "sqrt(" in shown.out and "maximum(" in shown.out
    bad = cli("train", str(path), "--clip-norm", "-1")
    assert bad.code == 1 and "clip_norm must be >= 0, got -1" in bad.err


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
