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
