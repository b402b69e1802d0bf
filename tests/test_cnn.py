"""Convolutional networks from .model files: conv layers and their parameter names, images from the built-in
digits and from .npz rows, normalization over channels, the errors that name sizes, the models in models/,
and a cross-check against PyTorch with the same weights (skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT
from test_targets import assert_cpu_matches_reference

import gradc
from gradc.dsl.diagnostics import ModelError
from gradc.runtime.execution.gradcheck import gradcheck
from gradc.runtime.training.data import Scaling

SMALL_CNN = """model small_cnn
input x: {dtype}[N, 2, 6, 6]
input y: i64[N]
h = x -> conv2d(4, 3, padding=same, init=he_normal) -> batchnorm(axis=1) -> relu -> max_pool2d(2)
      -> conv2d(4, 2, stride=2, groups=2) -> layernorm(axis=[1, 2, 3])
logits = h -> global_avg_pool -> dense(3)
loss L = cross_entropy(logits, y)
"""


def feeds(dtype=np.float64, n=3):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 2, 6, 6)).astype(dtype), "y": rng.integers(0, 3, size=n)}


def test_conv_layers_make_weights_in_pytorchs_layout_named_like_other_layers():
    graph = gradc.loads(SMALL_CNN.format(dtype="f32")).graph
    shapes = {n.name: n.type.shape for n in graph.nodes() if n.op == "param"}
    assert shapes["h.conv2d1.weight"] == (4, 2, 3, 3) and shapes["h.conv2d1.bias"] == (4,)
    assert shapes["h.conv2d2.weight"] == (4, 2, 2, 2)  # groups=2: 4 input channels / 2 per group
    assert shapes["h.batchnorm1.gamma"] == (4,) and shapes["h.layernorm1.gamma"] == (4, 1, 1)


def test_a_small_cnn_passes_gradcheck():
    graph = gradc.loads(SMALL_CNN.format(dtype="f64")).graph
    reports = gradcheck(graph, feeds(), max_elements=40)
    assert {"h.conv2d1.weight", "h.conv2d2.weight", "h.batchnorm1.gamma", "x"} <= {r.name for r in reports}
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


@pytest.mark.slow  # a 15 s compile; the mixed model "convolutions" runs the same kernels on the cpu target quickly
def test_a_small_cnn_runs_alike_on_cpu_and_reference():
    assert_cpu_matches_reference(gradc.loads(SMALL_CNN.format(dtype="f32")), inputs=feeds(np.float32))


@pytest.mark.parametrize(("source", "message"), [
    ("output o = x -> conv2d(4, 7)", "conv2d: kernel 7 larger than padded input 6"),
    ("output o = x -> conv2d(4, 3, dilation=3)", "conv2d: kernel 3 at dilation 3 (spanning 7) larger than padded "
                                                 "input 6"),
    ("param w: f32[4, 3, 3, 3] = 0.1\noutput o = conv2d(x, w)", "conv2d: x f32[N,2,6,6] has 2 channels, the "
                                                                  "weight f32[4,3,3,3] takes 3 per group"),
    ("output o = x -> conv2d(3, 3, groups=2)", "groups=2 must divide the input channels (2) and filters (3)"),
    ("output o = x -> max_pool2d(2, padding=2)", "max_pool2d: padding 2 is more than half the kernel 2"),
    ("output o = x -> conv2d(4, 3, padding=sam)", "argument 'padding' of conv2d must be same, valid, a number"),
])
def test_a_window_that_does_not_fit_is_an_error_naming_the_sizes(source, message):
    with pytest.raises(ModelError) as caught:
        gradc.loads(f"model m\ninput x: f32[N, 2, 6, 6]\n{source}\n")
    assert message in str(caught.value)


def test_digits_feed_an_image_input_standardized_per_channel(tmp_path):
    program = gradc.compile(gradc.loads("""model m
input x: f32[N, 1, 8, 8]
input y: i64[N]
logits = x -> conv2d(2, 3) -> flatten -> dense(10)
loss L = cross_entropy(logits, y)
train {
  data = digits
  epochs = 1
}
"""), target="reference")
    result = program.fit(epochs=1, quiet=True, out=str(tmp_path / "run"))
    assert np.isfinite(result.history[-1]["train_loss"])
    (mean, std), = Scaling.from_arrays(program.scaling.to_arrays()).stats.values()
    assert mean.shape == std.shape == (1, 1, 1)  # one channel: one mean, one deviation


def test_pytorch_computes_the_same_cnn_with_the_same_weights():
    torch = pytest.importorskip("torch")
    spec = gradc.loads(SMALL_CNN.format(dtype="f64"))
    program = gradc.compile(spec, target="reference", seed=3)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in program.params.items()}
    data = feeds()
    x = torch.tensor(data["x"], requires_grad=True)
    f = torch.nn.functional
    h = f.conv2d(x, params["h.conv2d1.weight"], params["h.conv2d1.bias"], padding="same")
    # run() is inference: batchnorm uses its running statistics (as initialized: mean 0, variance 1)
    h = f.batch_norm(h, params["h.batchnorm1.running_mean"].detach(), params["h.batchnorm1.running_var"].detach(),
                     params["h.batchnorm1.gamma"], params["h.batchnorm1.beta"], training=False, eps=1e-5)
    h = f.max_pool2d(f.relu(h), 2)
    h = f.conv2d(h, params["h.conv2d2.weight"], params["h.conv2d2.bias"], stride=2, groups=2)
    h = f.layer_norm(h, h.shape[1:], params["h.layernorm1.gamma"].expand(h.shape[1:]),
                     params["h.layernorm1.beta"].expand(h.shape[1:]), eps=1e-5)
    logits = h.mean(dim=(2, 3)) @ params["logits.dense1.weight"] + params["logits.dense1.bias"]
    loss = f.cross_entropy(logits, torch.tensor(data["y"]))
    loss.backward()
    ours = program.run(data, grad=True)
    np.testing.assert_allclose(ours["L"], loss.item(), rtol=1e-10)
    np.testing.assert_allclose(ours["grad/x"], x.grad.numpy(), rtol=1e-8, atol=1e-12)
    for name in ("h.conv2d1.weight", "h.conv2d2.weight", "h.batchnorm1.gamma", "h.layernorm1.gamma"):
        np.testing.assert_allclose(ours[f"grad/{name}"], params[name].grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("config", [
    {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}, {"groups": 2}, {"stride": 3, "padding": (0, 1)},
])
def test_pytorch_agrees_on_conv2d_and_conv_transpose2d(config):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(6, 4 // config.get("groups", 1), 3, 3))
    attrs = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in config.items())
    spec = gradc.loads(f"model m\ninput x: f64[N, 4, 7, 6]\ninput w: f64[6, {w.shape[1]}, 3, 3]\n"
                       f"output y = conv2d(x, w, {attrs})\noutput t = conv_transpose2d(y, w, {attrs})\n")
    out = gradc.compile(spec, target="reference").run({"x": x, "w": w})
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), **config)
    np.testing.assert_allclose(out["y"], want.numpy(), rtol=1e-10, atol=1e-12)
    back = torch.nn.functional.conv_transpose2d(want, torch.tensor(w), **config)
    np.testing.assert_allclose(out["t"], back.numpy(), rtol=1e-10, atol=1e-12)


def test_the_cnn_models_compile_with_their_layers():
    cnn = gradc.load(ROOT / "models" / "cnn_digits.model").graph
    assert cnn.node(cnn.inputs()["x"]).type.shape == ("N", 1, 8, 8)
    assert {n.op for n in cnn.nodes()} >= {"conv2d", "max_pool2d"}
    auto = gradc.load(ROOT / "models" / "conv_autoencoder.model").graph
    assert auto.node(auto.outputs["code"]).type.shape == ("N", 8, 2, 2)
    assert auto.node(auto.outputs["recon"]).type.shape == ("N", 1, 8, 8)


TINY_CNN = """model tiny_cnn
input x: f32[N, 1, 8, 8]
input y: i64[N]
logits = x -> conv2d(8, 3, padding=same) -> relu -> max_pool2d(2) -> flatten -> dense(10)
output probs = softmax(logits)
loss L = cross_entropy(logits, y)
train {
  data = digits
  optimizer = adam(lr=0.01)
  epochs = 3
}
"""


@pytest.mark.slow  # compiles and trains a small CNN (cnn_digits itself takes 50 s with an empty cache)
def test_a_cnn_trains_on_digits_as_images_and_predicts_flat_rows(cli, write_model, tmp_path):
    model = write_model(TINY_CNN)
    out = tmp_path / "run"
    result = cli("train", model, "--out", out)
    assert result.code == 0, result
    assert json.loads((out / "test.json").read_text())["accuracy"] > 0.8
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "x.npz", x=digits.data[:30].astype(np.float32))  # flat rows of 64
    assert cli("predict", model, "--checkpoint", out / "best.npz", "--inputs", tmp_path / "x.npz",
               "-o", tmp_path / "p.npz").code == 0
    predicted = np.load(tmp_path / "p.npz")["probs"].argmax(axis=1)
    assert np.mean(predicted == digits.target[:30]) > 0.8


def test_a_max_pools_maximum_and_tie_count_accumulate_in_float32_and_stay_exact():
    """A maximum and a count of tied maxima are exact in float32: the cpu target keeps them there (no float64
    accumulators, no conversion pass), and windows of equal values share the gradient exactly."""
    source = """model pool_ties
input x: f32[N, 1, 4, 4]
param w: f32[1, 1, 4, 4] = 0
loss L = sum(max_pool2d(x + w, 2) * [[[[1, 2], [3, 4]]]])
"""
    program = gradc.compile(gradc.loads(source), cache=False)
    code = program.backend.lowered.source
    assert "lowest_f32(" in code and "zeros_f32(" in code
    assert "lowest_f64(" not in code
    ties = program.gradients({"x": np.zeros((1, 1, 4, 4), np.float32)})["grad/w"][0, 0]
    expected = np.repeat(np.repeat(np.array([[1, 2], [3, 4]], np.float32) / 4, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(ties, expected)  # four-way ties: a quarter each
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 1.0  # one window with a single maximum
    single = program.gradients({"x": x})["grad/w"][0, 0]
    np.testing.assert_array_equal(single[:2, :2], [[1, 0], [0, 0]])
