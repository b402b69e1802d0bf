"""Limits a hostile or generated model file can reach: deep nesting, huge numbers, impossible shapes (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from gradc import api

HEADER = "model deep\ninput x: f32[N, 4]\n"
DEPTH = 3000  # far beyond the ~490 levels that exhausted Python's stack before


def _deep_pipeline(layers: int) -> str:
    """A generated MLP: ``layers`` pipeline stages (dense and relu alternating) and a loss."""
    stages = "".join("\n  -> dense(4) -> relu" if i % 2 == 0 else "" for i in range(layers))
    return f"model deep\ninput x: f32[N, 4]\ninput t: f32[N, 4]\ny = x{stages}\nloss L = mean((y - t)^2)\n"


@pytest.mark.parametrize("expression", [
    "(" * DEPTH + "x" + ")" * DEPTH,
    "x" + "^x" * DEPTH,
    "-" * (DEPTH + 1) + "x",
    "-(" * DEPTH + "x" + ")" * DEPTH,
    "relu(" * DEPTH + "x" + ")" * DEPTH,
    "x" + " + x" * DEPTH,
    "x" + "".join(" -> relu" for _ in range(DEPTH)),
], ids=["parens", "power", "unary-minus", "negated-parens", "calls", "sum", "pipeline"])
def test_deep_nesting_checks(expression):
    spec = api.loads(f"{HEADER}y = {expression}\noutput y\n")
    assert spec.graph.outputs["y"] is not None


def test_deep_nesting_reports_the_outermost_mistake_first(cli, write_model):
    path = write_model(f"{HEADER}y = " + "relu(" * DEPTH + "nope(x)" + ")" * DEPTH + "\noutput y\n")
    result = cli("check", path)
    assert result.code == 1, result
    assert f"m.model:3:{5 + 5 * DEPTH}: error: unknown op 'nope'" in result.err


def test_328_stage_pipeline_checks_and_runs_on_the_reference_target():
    spec = api.loads(_deep_pipeline(328))
    assert sum(1 for n in spec.graph.nodes() if n.op == "param") == 328  # 164 dense layers
    program = api.compile(spec, target="reference")
    x = np.full((3, 4), 0.5, np.float32)
    out = program.run({"x": x, "t": np.zeros_like(x)}, grad=True)
    assert np.isfinite(out["L"])


@pytest.mark.slow
def test_328_stage_pipeline_compiles_and_runs_on_cpu(tmp_path):
    spec = api.loads(_deep_pipeline(328))
    program = api.compile(spec, target="cpu")
    reference = api.compile(spec, target="reference")
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    feeds = {"x": x, "t": np.zeros_like(x)}
    np.testing.assert_allclose(program.run(feeds)["L"], reference.run(feeds)["L"], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- huge numbers and non-finite literals

HUGE_INT = "1" + "0" * 400  # in Python's digit limit, beyond the float range
MANY_DIGITS = "1" + "0" * 5000  # beyond Python's 4300-digit int() limit
TRAIN = "y = x\nloss L = mean(y)\ntrain {{\n  {}\n}}\n"


@pytest.mark.parametrize(("body", "line", "col", "fragment"), [
    (f"y = x * {MANY_DIGITS}\noutput y\n", 3, 9, "(5001 characters) is out of range: a number must be finite"),
    (f"y = x * {HUGE_INT}\noutput y\n", 3, 9, "is out of range: a number must be finite, at most 1.8e308"),
    ("y = x * 1e309\noutput y\n", 3, 9, "number 1e309 is out of range"),
    ("y = leaky_relu(x, alpha=1e309)\noutput y\n", 3, 25, "number 1e309 is out of range"),
    (f"y = leaky_relu(x, alpha={HUGE_INT})\noutput y\n", 3, 25, "is out of range"),
    (f"param b: f32 = {HUGE_INT}\ny = x * b\noutput y\n", 3, 16, "is out of range"),
    (f"param b: f32[4] = normal(std={HUGE_INT})\ny = x * b\noutput y\n", 3, 30, "is out of range"),
    (TRAIN.format(f"weight_decay = {HUGE_INT}"), 6, 18, "is out of range"),
    (TRAIN.format(f"validation = {HUGE_INT}"), 6, 16, "is out of range"),
    (TRAIN.format(f"optimizer = sgd(lr={HUGE_INT})"), 6, 22, "is out of range"),
    (TRAIN.format("optimizer = adam(lr=1e309)"), 6, 23, "number 1e309 is out of range"),
    (TRAIN.format("seed = 9223372036854775808"), 6, 10, "seed must be at most 9,223,372,036,854,775,807"),
    ("y = reshape(x, shape=[-1, 9223372036854775808])\noutput y\n", 3, 27, "does not fit a 64-bit integer"),
    ("param b: f32 = 1e39\ny = x * b\noutput y\n", 3, 16, "number 1e39 is out of range for f32"),
    ("y = x * -1e39\noutput y\n", 3, 9, "number -1e39 is out of range for f32"),
    ("c = 1e39\ny = x * c\noutput y\n", 3, 5, "number 1e39 is out of range for f32"),
], ids=["many-digits", "huge-int", "inf-constant", "inf-attribute", "huge-attribute", "huge-initializer",
        "huge-initializer-argument", "huge-weight-decay", "huge-validation", "huge-lr", "inf-lr", "huge-seed",
        "huge-reshape", "f32-initializer", "f32-constant", "f32-definition"])
def test_out_of_range_number_is_located(cli, write_model, body, line, col, fragment):
    result = cli("check", write_model(HEADER + body))
    assert result.code == 1, result
    assert f"m.model:{line}:{col}: error: " in result.err and fragment in result.err, result.err


def test_f64_takes_numbers_beyond_f32_range():
    spec = api.loads("model m\ninput x: f64[N, 4]\nparam b: f64 = 1e39\ny = x * b * 1e300\noutput y\n")
    assert "y" in spec.graph.outputs


@pytest.mark.parametrize(("decl", "col", "fragment"), [
    ("input x: f32[N, 9223372036854775808]", 17, "dimension 9223372036854775808 is too large"),
    ("input x: f32[N, 4611686018427387904]", 1, "input 'x' (f32[N,4611686018427387904]) needs "
     "18,446,744,073,709,551,616 bytes (16.0 EiB) per example, more than this machine's memory"),
    ("input x: f32[N, 4]\nparam w: f32[1048576, 1048576] = zeros", 1,
     "parameter 'w' (f32[1048576,1048576]) needs 4,398,046,511,104 bytes (4.0 TiB), more than"),
], ids=["dimension-2^63", "huge-input", "huge-param"])
def test_impossible_shape_is_located(cli, write_model, decl, col, fragment):
    result = cli("check", write_model(f"model m\n{decl}\ny = x\noutput y\n"))
    assert result.code == 1, result
    line = decl.count("\n") + 2
    assert f"m.model:{line}:{col}: error: {fragment}" in result.err, result.err


def test_huge_dense_layer_is_located_at_its_call(cli, write_model):
    result = cli("check", write_model("model m\ninput x: f32[N, 1048576]\ny = x -> dense(1048576)\noutput y\n"))
    assert result.code == 1, result
    assert "m.model:3:10: error: parameter 'y.dense1.weight' (f32[1048576,1048576]) needs 4,398,046,511,104 " \
           "bytes (4.0 TiB)" in result.err, result.err


def test_zero_literals_still_parse():
    spec = api.loads("model m\ninput x: f32[N, 4]\nparam b: f32 = 000\ny = x * 0 + b * 0.0\noutput y\n")
    assert "y" in spec.graph.outputs


@pytest.mark.slow
def test_a_1024_layer_model_goes_through_every_pass_and_the_schedule():
    """Issue 13's scale model (1024 dense -> tanh layers, ~13k nodes after autodiff): every pass and fusion
    are linear sweeps now (DCE alone took 20 s before); the time is reported by benchmarks/compile_scale.py."""
    from gradc.compiler.driver import prepare, schedule

    stages = " -> dense(8) -> tanh" * 1024
    spec = api.loads(f"model deep\ninput x: f32[N, 8]\ninput t: f32[N, 2]\ny = x{stages} -> dense(2)\n"
                     "loss L = mean((y - t)^2)\n")
    scheduled = schedule(prepare(spec.graph))
    assert len(scheduled.grads) == 2 * 1025 + 2 and scheduled.kernels
