"""The CPU target against the reference executor: every op case, both dtypes, every model, the SGD step,
and the compile cache across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, ROOT
from test_ops import CASES, build_case, case_id

import gradc
from gradc.compiler.passes import optimize
from gradc.runtime.execution.backends import CpuBackend, ReferenceBackend
from gradc.runtime.execution.sampling import random_inputs

TOLERANCE = {"f32": 1e-5, "f64": 1e-10}

def assert_cpu_matches_reference(spec, batches=(3,), inputs=None) -> None:
    """The losses and gradients of ``spec`` on the cpu target against the reference executor, on ``inputs`` or
    on random inputs of each batch size (one compile serves them all)."""
    reference = gradc.compile(spec, target="reference")
    cpu = gradc.compile(spec, target="cpu")
    feeds = [inputs] if inputs is not None else [random_inputs(reference.graph, n, np.random.default_rng(n))
                                                  for n in batches]
    for one in feeds:
        assert_close(reference.run(one, grad=True), cpu.run(one, grad=True), TOLERANCE["f32"])


# the larger programs (the CNNs compile for 10-20 s): pytest -m "not slow" leaves them out
SLOW_MODELS = ("mlp_digits", "spirals_mlp", "cnn_digits", "conv_autoencoder", "lstm_adding", "gru_sine",
               "rnn_parity", "transformer_sort")


def assert_close(expected: dict, actual: dict, rtol: float) -> None:
    assert expected.keys() == actual.keys()
    for key, want in expected.items():
        got = actual[key]
        assert got.shape == want.shape, key
        scale = max(float(np.max(np.abs(want))), 1.0) if want.size else 1.0
        error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        assert error <= rtol * scale, f"{key}: max error {error:.3e} against scale {scale:.3e}"


WINDOW_OPS = ("conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d")


def _cpu_cases() -> list:
    """Every case in f32 (quick) and f64 (slow). The option variants of the window ops compile programs of
    20-40 kernels each: they run in f32 only, and in the slow suite; each window op's first case stays quick
    (the mixed model "convolutions" runs the options together)."""
    params = []
    for case in CASES:
        variant = case.op in WINDOW_OPS and bool(case.id)
        params.append(pytest.param(case, "f32", marks=[pytest.mark.slow] if variant else [],
                                   id=f"{case_id(case)}-f32"))
        if not variant:
            params.append(pytest.param(case, "f64", marks=pytest.mark.slow, id=f"{case_id(case)}-f64"))
    return params


@pytest.mark.parametrize(("case", "dtype"), _cpu_cases())
def test_op_on_cpu_matches_reference(case, dtype):
    graph, _, arrays = build_case(case, dtype)
    optimized = optimize(graph)
    feeds = {k: v.astype(np.float32 if dtype == "f32" else np.float64) if v.dtype.kind == "f" else v
             for k, v in arrays.items()}
    reference = ReferenceBackend(optimized).gradients(feeds, {})
    cpu = CpuBackend(optimized).gradients(feeds, {})
    assert_close(reference, cpu, TOLERANCE[dtype])


# cnn_digits (a 20 s compile) runs only kernels that the window op cases and the mixed model "convolutions"
# check here; tests/test_cnn.py trains it on the cpu target
# grammar_lm is transformer_sort's blocks with causal attention and learned positions, which the op cases,
# the mixed model "attention" and tests/test_generation.py run; its cpu program takes 40 s to compile here
CPU_CHECKED_MODELS = [m for m in MODELS if m.stem not in ("cnn_digits", "grammar_lm")]


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m.stem in SLOW_MODELS else m
                                   for m in CPU_CHECKED_MODELS], ids=[m.stem for m in CPU_CHECKED_MODELS])
def test_models_on_cpu_match_reference(model):
    spec = gradc.load(model)
    reference = gradc.compile(spec, target="reference")
    cpu = gradc.compile(spec, target="cpu")
    for batch in (1, 7, 64):  # one compile serves every batch size
        inputs = random_inputs(reference.graph, batch, np.random.default_rng(batch))
        assert_close(reference.run(inputs, grad=True), cpu.run(inputs, grad=True), TOLERANCE["f32"])
        assert_close(reference.run(inputs), cpu.run(inputs), TOLERANCE["f32"])


@pytest.mark.parametrize("model", ["tiny_regression", "logistic_regression",
                                   pytest.param("mlp_digits", marks=pytest.mark.slow)])
def test_sgd_step_matches_reference_and_learns(model):
    spec = gradc.load(ROOT / "models" / f"{model}.model")
    programs = [gradc.compile(spec, target=t, seed=3) for t in ("reference", "cpu")]
    inputs = random_inputs(programs[0].graph, 32, np.random.default_rng(0))
    losses = {p.target: [p.step(inputs, lr=0.1) for _ in range(20)] for p in programs}
    np.testing.assert_allclose(losses["cpu"], losses["reference"], rtol=1e-4)
    assert losses["cpu"][-1] < losses["cpu"][0]
    for name, value in programs[0].params.items():
        np.testing.assert_allclose(programs[1].params[name], value, rtol=1e-4, atol=1e-6)


def test_step_matches_textbook_sgd():
    spec = gradc.loads("model lin\ninput x: f64[N]\ninput t: f64[N]\nparam w: f64 = 0.5\nparam b: f64 = 0\n"
                       "loss L = mean((w*x + b - t)^2)\n")
    prog = gradc.compile(spec)
    x, t = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])
    w, b = 0.5, 0.0
    for _ in range(5):
        r = w * x + b - t
        loss = np.mean(r**2)
        gw, gb = np.mean(2 * r * x), np.mean(2 * r)
        assert prog.step({"x": x, "t": t}, lr=0.05) == pytest.approx(loss, rel=1e-12)
        w, b = w - 0.05 * gw, b - 0.05 * gb
        assert prog.params["w"] == pytest.approx(w, rel=1e-12) and prog.params["b"] == pytest.approx(b, rel=1e-12)


def test_generated_source_has_no_user_names(cli, write_model, tmp_path):
    path = write_model("model zebra_model\ninput quokka_in: f32[N, 3]\ninput wombat_t: f32[N]\n"
                       "param okapi_w: f32[3] = ones\nnarwhal_h = quokka_in -> dense(4) -> relu\n"
                       "loss axolotl_loss = mse(narwhal_h @ okapi_w_extra, wombat_t)\n"
                       "param okapi_w_extra: f32[4] = ones\noutput okapi_out = narwhal_h\n")
    result = cli("compile", path, "--emit", tmp_path)
    assert result.code == 0, result
    source = (tmp_path / "zebra_model_cpu.py").read_text()
    for name in ("zebra", "quokka", "wombat", "okapi", "narwhal", "axolotl", "dense1"):
        assert name not in source, name


def test_emitted_source_maps_kernels_to_nodes_and_lines(cli, tmp_path):
    result = cli("compile", ROOT / "models" / "mlp_digits.model", "--emit", tmp_path)
    source = (tmp_path / "mlp_digits_cpu.py").read_text()
    assert ("# k0 gemm: matmul | nodes %3 | lines 4 + epilogue k1 loop: add, relu, step | nodes %5 %6 %38 | "
            "lines 4") in source
    # an entry point's products may split their rows across threads (cpu_lib.dot_rows); BLAS reads transposed
    # operands in place
    assert "= dot_rows(" in source and "= dot_rows_nt(" in source and "= dot_tn(" in source
    # cross_entropy expanded: the loss in one loop after the row maximum and the sum of exponentials; the
    # backward's softmax minus one-hot, scaled by 1/N, with the bias gradient's sum, in another
    assert "kernel k14 loop over [N,10]: log, sub, onehot, mul, mul, mean; stores %21 %50" in result.out
    assert "kernel k15 loop over [N,10]: div, div, sub, mul, sum" in result.out


@pytest.mark.slow
def test_second_process_hits_the_cache(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "gradc", "compile", str(ROOT / "models" / "tiny_regression.model"), "-v"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert "(cache miss)" in first.stdout and "cache miss: no up-to-date entry for key" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert "(cache hit)" in second.stdout
    info = subprocess.run([sys.executable, "-m", "gradc", "cache", "info"], capture_output=True, text=True,
                          env=env, check=True)
    assert "programs: 1" in info.stdout
    cleared = subprocess.run([sys.executable, "-m", "gradc", "cache", "clear"], capture_output=True, text=True,
                             env=env, check=True)
    assert "removed 1 cached program" in cleared.stdout


def test_run_on_both_targets_from_the_cli(cli):
    for target in ("cpu", "reference"):
        result = cli("run", ROOT / "models" / "polynomial.model", "-i", "x=1", "-i", "y=2", "--grad",
                     "--target", target)
        assert result.out.split() == ["f", "12", "grad/x", "10", "grad/y", "7"], (target, result)


def test_division_by_zero_follows_numpy_on_every_target():
    spec = gradc.loads("model d\ninput a: f32[N]\ninput b: f32[N]\noutput y = a / b\n")
    for target in ("reference", "cpu"):
        y = gradc.compile(spec, target=target).run({"a": np.array([1.0, 0.0]), "b": np.array([0.0, 0.0])})["y"]
        assert np.isinf(y[0]) and np.isnan(y[1]), target


MIXED_MODELS = {
    # every window op at a few channels: convolutions with stride, padding, groups, a transposed one, pools
    # (padded, ceil mode), an upsample and normalization over channels
    "convolutions": "model c\ninput x: f32[N, 2, 6, 6]\ninput y: i64[N]\n"
                    "h = x -> conv2d(4, 3, padding=same) -> batchnorm(axis=1) -> relu -> max_pool2d(3, stride=2, "
                    "padding=1, ceil_mode=true)\n"
                    "u = h -> conv_transpose2d(2, 2, stride=2, groups=2) -> avg_pool2d(2) -> upsample\n"
                    "logits = global_avg_pool(u) @ h.conv2d1.bias[0:2, none]\n"
                    "loss L = mean(logits^2) + mean(global_max_pool(h))\n",
    # blocks from the standard library, repeated, with a tied weight and a reflecting pad
    "residual-blocks": "import std\nmodel r\ninput x: f32[N, 4]\ninput y: i64[N]\n"
                       "h = x -> dense(4) -> relu -> residual_mlp(4, repeat=2)\n"
                       "logits = pad(h, 1, 0, mode=reflect)[:, :-1] @ transpose(h.dense1.weight)[:, 0:3]\n"
                       "loss L = cross_entropy(logits, y)\n",
    # slices, a pad and a concatenation read through guarded maps; the backward epilogue stores 1 - tanh(d)^2
    # in place of the product before it adds the product (the product is read first)
    "cuts": "model cuts\ninput x: f32[N, 6]\ninput t: f32[N, 4]\nparam w: f32[7, 4] = normal(std=0.3)\n"
            "c = concat(x[:, 1:5], x[..., ::-2], axis=1)\nd = pad(x[:, 0:2], 1, 1, value=0.5)\n"
            "loss L = mean((c @ w + tanh(d) - t)^2)\n",
    "integer-arithmetic": "model a\ninput y: i64[N]\ninput x: f32[N]\noutput z = y * 2 + 1\noutput w = x * y\n"
                          "loss L = mean(x * y)\n",
    "keepdims-max": "model b\ninput x: f32[N, 3, 4]\nh = x - max(x, axis=[1, 2], keepdims=true)\n"
                    "loss L = mean(exp(h) / sum(exp(h), axis=2, keepdims=true))\n",
    "batched-reshape": "model c\ninput x: f32[N, 3, 4]\nparam w: f32[4, 5] = xavier_uniform\n"
                       "h = x @ w -> gelu -> transpose(axes=[0, 2, 1])\noutput o = reshape(h, shape=[N, -1])\n"
                       "loss L = mean(o ^ 2) + l2(w)\n",
    "scalars": "model d\ninput a: f64\nparam p: f64 = 2\nloss L = (a - p)^2 + abs(p) + sqrt(p) + log(p)\n",
    "distributions": "model e\ninput x: f32[N, 5]\ninput t: f32[N, 5]\n"
                     "loss L = kl_div(softmax(x, axis=1), softmax(t)) + huber(x, t, delta=0.3) + mae(x, t)\n",
    "loss-mix": "model f\ninput s: f32[N, 4]\ninput y: i64[N]\ninput p: f32[N, 4]\n"
                "loss L = hinge(s, y) + cross_entropy(s, y, label_smoothing=0.2) + bce(sigmoid(s), p)"
                " + bce_with_logits(s, p)\n",
    "vector-batch-matrix": "model g\ninput v: f32[4]\ninput m: f32[N, 4, 3]\noutput o = v @ m\nloss L = sum(o * o)\n",
    "dtype-promotion": "model h\ninput x: f32[N, 3]\ninput k: i32[N, 3]\nparam w: f64[3, 2] = xavier_uniform\n"
                       "input t: f64[N, 2]\nh = (x * k + k * 0.5) @ w\noutput o = h\n"
                       "loss L = mse(h, t) + bce(sigmoid(x), x * 0)\n",
    "batch-broadcast": "model i\ninput x: f32[N, 2, 3]\nparam w: f32[1, 3, 2] = xavier_uniform\n"
                       "input y: f32[1, 2, 3]\noutput o = (x @ w) + transpose(y, [0, 1, 2]) @ w\n"
                       "loss L = mean(o ^ 2)\n",
    # attention's products by hand: [N, heads, T, D] @ [N, 1, D, S] broadcasts the heads axis
    "batch-broadcast-heads": "model k\ninput q: f32[N, 2, 3, 4]\ninput k: f32[N, 1, 4, 5]\n"
                             "output s = softmax(q @ k, axis=-1) @ transpose(k, [0, 1, 3, 2])\n"
                             "loss L = mean(s * s)\n",
    # recurrences: scans stacked (every step's state of both directions under a length mask, then the last state
    # from a given one), each with a reverse scan as gradient
    "recurrence": "model r\ninput x: f32[N, 3, 2]\ninput y: f32[N, 3, 2]\ninput n: i64[N]\ninput h0: f32[N, 2]\n"
                  "h = x -> gru(2, return_sequences=true, bidirectional=true, lengths=n)\n"
                  "s = h -> lstm(2, initial=h0)\nd = h -> dense(2)\nloss L = mean((d - y)^2) + mean(s^2)\n",
    # attention: multi-head self-attention (causal) then cross-attention over padded keys, an additive mask
    "attention": "model t\ninput x: f32[N, 3, 4]\ninput c: f32[N, 4, 2]\ninput n: i64[N]\ninput b: f32[3, 4]\n"
                 "h = x -> multi_head_attention(heads=2, dim=4, causal=true)\n"
                 "a = h -> multi_head_attention(heads=2, dim=4, context=c, lengths=n, mask=b)\n"
                 "loss L = mean(a * a) + mean(attention(x, x, h, causal=true, scale=0.3) ^ 2)\n",
    # comparisons of constants fold to bool constants (found by the random models, seeds 20093 and 21045)
    "folded-comparison": "model j\ninput x: f32[N, 3]\nc = 0.25\n"
                         "y = where(gt(c, c), x, x * c) + where(eq(relu(c), 0), x, c * 2)\nloss L = mean(y)\n",
}


@pytest.mark.parametrize("source", MIXED_MODELS.values(), ids=MIXED_MODELS.keys())
def test_mixed_models_on_cpu_match_reference(source):
    spec = gradc.loads(source)
    reference, cpu = gradc.compile(spec, target="reference"), gradc.compile(spec, target="cpu")
    inputs = random_inputs(reference.graph, 5, np.random.default_rng(1))
    assert_close(reference.run(inputs, grad=True), cpu.run(inputs, grad=True), TOLERANCE["f32"])


TEXTBOOK = {
    "sgd": {"lr": 0.05},
    "momentum": {"lr": 0.05, "mu": 0.9},
    "nesterov": {"lr": 0.05, "mu": 0.8},
    "adagrad": {"lr": 0.5, "eps": 1e-8},
    "rmsprop": {"lr": 0.01, "rho": 0.9, "eps": 1e-8},
    "adam": {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}


def textbook_trajectory(name: str, h: dict, x: np.ndarray, t: np.ndarray, steps: int) -> list[tuple]:
    """(loss, w, b) after each step of the linear model L = mean((w x + b - t)^2), written independently."""
    w, b = 0.5, 0.0
    state = {"v": np.zeros(2), "s": np.zeros(2), "m": np.zeros(2), "u": np.zeros(2)}
    out = []
    for step in range(1, steps + 1):
        r = w * x + b - t
        loss = np.mean(r**2)
        g = np.array([np.mean(2 * r * x), np.mean(2 * r)])
        p = np.array([w, b])
        if name == "sgd":
            p = p - h["lr"] * g
        elif name == "momentum":
            state["v"] = h["mu"] * state["v"] - h["lr"] * g
            p = p + state["v"]
        elif name == "nesterov":
            previous = state["v"]
            state["v"] = h["mu"] * previous - h["lr"] * g
            p = p - h["mu"] * previous + (1 + h["mu"]) * state["v"]
        elif name == "adagrad":
            state["s"] = state["s"] + g**2
            p = p - h["lr"] * g / (np.sqrt(state["s"]) + h["eps"])
        elif name == "rmsprop":
            state["s"] = h["rho"] * state["s"] + (1 - h["rho"]) * g**2
            p = p - h["lr"] * g / (np.sqrt(state["s"]) + h["eps"])
        elif name == "adam":
            state["m"] = h["beta1"] * state["m"] + (1 - h["beta1"]) * g
            state["u"] = h["beta2"] * state["u"] + (1 - h["beta2"]) * g**2
            m_hat = state["m"] / (1 - h["beta1"] ** step)
            u_hat = state["u"] / (1 - h["beta2"] ** step)
            p = p - h["lr"] * m_hat / (np.sqrt(u_hat) + h["eps"])
        w, b = p
        out.append((loss, w, b))
    return out


@pytest.mark.parametrize("target", ["cpu", "reference"])
@pytest.mark.parametrize("name", TEXTBOOK)
def test_optimizer_matches_textbook(name, target):
    spec = gradc.loads("model lin\ninput x: f64[N]\ninput t: f64[N]\nparam w: f64 = 0.5\nparam b: f64 = 0\n"
                       "loss L = mean((w*x + b - t)^2)\n")
    prog = gradc.compile(spec, target=target)
    prog.set_optimizer(name, **TEXTBOOK[name])
    x, t = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])
    for loss, w, b in textbook_trajectory(name, TEXTBOOK[name], x, t, steps=6):
        assert prog.step({"x": x, "t": t}) == pytest.approx(loss, rel=1e-12)
        assert prog.params["w"] == pytest.approx(w, rel=1e-12)
        assert prog.params["b"] == pytest.approx(b, rel=1e-12, abs=1e-15)


def test_optimizer_errors_name_the_mistake():
    prog = gradc.compile(gradc.loads("model m\ninput x: f32\nparam w: f32 = 1\nloss L = (w * x)^2\n"))
    with pytest.raises(gradc.GradcError, match="unknown optimizer 'adamw'; did you mean 'adam'"):
        prog.set_optimizer("adamw")
    with pytest.raises(gradc.GradcError, match="unknown argument 'beta' for optimizer adam"):
        prog.set_optimizer("adam", beta=0.9)


@pytest.mark.parametrize("target", ["cpu", "reference"])
@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_momentum_keeps_its_velocity_when_the_learning_rate_changes(name, target):
    """gradc's velocity holds steps (v = mu v - lr g): a new rate applies to new gradients only. PyTorch's buffer
    holds gradients (b = mu b + g, p -= lr b), so a new rate rescales the whole history; with a constant rate
    the two agree. Here the rate drops tenfold after two steps, and gradc follows its own formula."""
    spec = gradc.loads("model lin\ninput x: f64[N]\ninput t: f64[N]\nparam w: f64 = 0.5\nparam b: f64 = 0\n"
                       "loss L = mean((w*x + b - t)^2)\n")
    prog = gradc.compile(spec, target=target)
    mu, rates = 0.9, [0.05, 0.05, 0.005, 0.005]
    prog.set_optimizer(name, lr=rates[0], mu=mu)
    x, t = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])
    p, v, torch_p, torch_buffer = np.array([0.5, 0.0]), np.zeros(2), np.array([0.5, 0.0]), np.zeros(2)
    for lr in rates:
        prog.step({"x": x, "t": t}, lr=lr)
        r = p[0] * x + p[1] - t
        g = np.array([np.mean(2 * r * x), np.mean(2 * r)])
        previous = v
        v = mu * v - lr * g
        p = p + v if name == "momentum" else p - mu * previous + (1 + mu) * v
        torch_r = torch_p[0] * x + torch_p[1] - t
        torch_buffer = mu * torch_buffer + np.array([np.mean(2 * torch_r * x), np.mean(2 * torch_r)])
        torch_p = torch_p - lr * torch_buffer
        assert prog.params["w"] == pytest.approx(p[0], rel=1e-12)
        assert prog.params["b"] == pytest.approx(p[1], rel=1e-12, abs=1e-15)
    if name == "momentum":
        assert abs(prog.params["w"] - torch_p[0]) > 1e-3  # the conventions part once the rate changes


def test_a_short_broadcast_loop_is_recomputed_inside_its_reader_only_when_position_free():
    """Vertical fusion recomputes a short [N,1] loop inside the [N,C] loop that reads it (log of a row sum), but
    not a one-hot, whose value depends on its own loop index."""
    from gradc.compiler.builder import Builder, Ref
    from gradc.compiler.driver import schedule
    from gradc.compiler.graph import Graph
    from gradc.compiler.types import TensorType

    g = Graph("fusion", batch_symbol="N")
    b = Builder(g)
    x = Ref(g.add("input", (), TensorType(("N", 4), "f32"), name="x"))
    y = Ref(g.add("input", (), TensorType(("N",), "i64"), name="y"))
    row = b.sum(b.exp(x), axis=1, keepdims=True)  # [N, 1]
    g.outputs["logs"] = b.sub(x, b.log(row))  # log(row) recomputed inside the [N, 4] loop
    g.outputs["marked"] = b.mul(x, b.onehot(y, b.mul(row, 2.0)))  # a one-hot over [N, 1]: its own loop
    scheduled = schedule(optimize(g))
    loops = {tuple(scheduled.node(n).op for n in k.nodes) for k in scheduled.kernels if k.kind == "loop"}
    assert ("log", "sub") in loops
    feeds = {"x": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), "y": np.array([0, 0, 1])}
    want = ReferenceBackend(optimize(g)).forward(feeds, {})
    assert_close(want, CpuBackend(optimize(g)).forward(feeds, {}), 1e-5)
