"""batchnorm and layernorm: forward against NumPy formulas on both targets and in both modes, gradients
against finite differences in both modes, running statistics, and checkpoints."""

import numpy as np
import pytest

import gradc
from gradc.compiler.passes.training import batch_statistics, statistic_outputs, training_graph
from gradc.runtime.execution.gradcheck import gradcheck
from gradc.runtime.training.checkpoints import Checkpoint

EPS = 1e-5
TEMPLATE = """model norm
input x: f64[N, 5]
input t: f64[N, 5]
y = x -> {layer}
output y
loss L = mse(y, t)
"""
RNG = np.random.default_rng(0)
X = RNG.normal(2.0, 3.0, size=(7, 5))
T = RNG.normal(size=(7, 5))
GAMMA, BETA = RNG.normal(size=5), RNG.normal(size=5)


def program(layer, target):
    prog = gradc.compile(gradc.loads(TEMPLATE.format(layer=layer)), target=target)
    prefix = f"y.{layer}1"
    params = dict(prog.params, **{f"{prefix}.gamma": GAMMA, f"{prefix}.beta": BETA})
    if layer == "batchnorm":
        params[f"{prefix}.running_mean"] = RNG.normal(size=5)
        params[f"{prefix}.running_var"] = RNG.uniform(0.5, 2.0, size=5)
    prog.set_params(params)
    return prog, prefix


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_layernorm_forward(target):
    prog, _ = program("layernorm", target)
    mean, var = X.mean(axis=1, keepdims=True), X.var(axis=1, keepdims=True)
    np.testing.assert_allclose(prog.run({"x": X, "t": T})["y"], (X - mean) / np.sqrt(var + EPS) * GAMMA + BETA,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_batchnorm_forward_in_both_modes(target):
    prog, prefix = program("batchnorm", target)
    running = prog.params[f"{prefix}.running_mean"], prog.params[f"{prefix}.running_var"]
    evaluation = prog.run({"x": X, "t": T})["y"]
    np.testing.assert_allclose(evaluation, (X - running[0]) / np.sqrt(running[1] + EPS) * GAMMA + BETA, rtol=1e-10)
    mode = prog.training_mode()
    assert set(mode.statistics.values()) == {f"{prefix}.running_mean", f"{prefix}.running_var"}
    training = mode.backend.forward(mode.feed_spec.check({"x": X, "t": T}), prog.params)
    batch_formula = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + EPS) * GAMMA + BETA
    np.testing.assert_allclose(training["y"], batch_formula, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(training[f"{prefix}.running_var.batch"], X.var(axis=0), rtol=1e-12)


def test_running_statistics_are_the_training_datas():
    prog, prefix = program("batchnorm", "cpu")
    prog.update_running_statistics([{"x": X[:4], "t": T[:4]}, {"x": X[4:], "t": T[4:]}])
    expected_mean = (4 * X[:4].mean(axis=0) + 3 * X[4:].mean(axis=0)) / 7
    expected_var = (4 * X[:4].var(axis=0) + 3 * X[4:].var(axis=0)) / 7
    np.testing.assert_allclose(prog.params[f"{prefix}.running_mean"], expected_mean, rtol=1e-12)
    np.testing.assert_allclose(prog.params[f"{prefix}.running_var"], expected_var, rtol=1e-12)
    prog.update_running_statistics([{"x": X, "t": T}])  # one batch: evaluation equals training
    mode = prog.training_mode()
    training = mode.backend.forward(mode.feed_spec.check({"x": X, "t": T}), prog.params)["y"]
    np.testing.assert_allclose(prog.run({"x": X, "t": T})["y"], training, rtol=1e-10)


@pytest.mark.parametrize("layer", ["layernorm", "batchnorm"])
@pytest.mark.parametrize("mode", ["evaluation", "training"])
def test_gradients_match_finite_differences(layer, mode):
    graph = gradc.loads(TEMPLATE.format(layer=layer)).graph
    if mode == "training":
        graph = batch_statistics(graph)
    reports = gradcheck(graph, {"x": X, "t": T}, None, max_elements=100)
    assert {r.name for r in reports} >= {"x", f"y.{layer}1.gamma", f"y.{layer}1.beta"}
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_training_mode_replaces_every_running_statistic():
    spec = gradc.loads(TEMPLATE.format(layer="batchnorm"))
    train = training_graph(spec.graph)
    assert not any(n.op == "running_stat" for n in train.nodes())
    assert statistic_outputs(train) == {"y.batchnorm1.running_mean.batch": "y.batchnorm1.running_mean",
                                        "y.batchnorm1.running_var.batch": "y.batchnorm1.running_var"}
    evaluation = gradc.graph(spec)
    assert not any(n.op in ("running_stat", "mean") for n in evaluation.nodes())  # no batch statistics


@pytest.mark.slow
def test_a_batchnorm_mlp_trains_and_keeps_its_statistics(tmp_path):
    source = """model bn
input x: f32[N, 64]
input y: i64[N]
logits = x -> dense(32) -> batchnorm -> relu -> dense(10)
output probs = softmax(logits)
loss L = cross_entropy(logits, y)
train {
  data = digits
  optimizer = adam(lr=0.01)
  epochs = 4
}
"""
    prog = gradc.compile(gradc.loads(source))
    result = prog.fit(out=tmp_path, quiet=True)
    assert result.test.metrics["accuracy"] >= 0.9
    saved = Checkpoint.load(tmp_path / "last.npz")
    mean = saved.params["logits.batchnorm1.running_mean"]
    assert not np.allclose(mean, 0) and np.array_equal(mean, prog.params["logits.batchnorm1.running_mean"])
    loaded = gradc.load_checkpoint(gradc.loads(source), tmp_path / "last.npz")
    assert loaded.evaluate().loss == pytest.approx(result.test.loss, rel=1e-6)
