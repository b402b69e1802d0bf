"""A layer's parameter used by name in an expression (``code.dense1.weight``): tied and shared weights get one
gradient, the sum over their uses, on every target."""

from __future__ import annotations

from test_targets import assert_cpu_matches_reference

import gradc
from gradc.runtime.execution.gradcheck import gradcheck

TIED = """model tied
input x: f64[N, 6]
code = x -> dense(3) -> tanh
recon = code @ transpose(code.dense1.weight) + x[:, 0:1] * 0
loss L = mse(recon, x) + 1e-2 * l2(code.dense1.weight)
"""


def test_a_tied_weight_has_one_gradient_that_matches_finite_differences():
    graph = gradc.loads(TIED).graph
    assert sorted(graph.params()) == ["code.dense1.bias", "code.dense1.weight"]
    reports = gradcheck(graph, max_elements=100)
    checked = {r.name for r in reports}
    assert "code.dense1.weight" in checked
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_a_tied_weight_trains_alike_on_cpu_and_reference():
    assert_cpu_matches_reference(gradc.loads(TIED.replace("f64", "f32")), batches=(5,))
