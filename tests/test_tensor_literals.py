"""Constant tensors written in the source: ``[1, 2, 3]`` is an i64 constant, ``[0.5, 1]`` one of the model's
float dtype; they broadcast like any tensor, index gathers, and run alike on the reference and the cpu target."""

from __future__ import annotations

import numpy as np
import pytest
from test_targets import assert_cpu_matches_reference

import gradc
from gradc.dsl.diagnostics import ModelError
from gradc.runtime.execution.gradcheck import gradcheck

MODEL = """model consts
input x: {dtype}[N, 3]
w = [0.5, -1, 2]
picked = gather(x * w, [2, 0], axis=1)
output counts = [[1, 2, 3], [4, 5, 6]] * 2
loss L = mean(picked^2) + mean((x + [1, 2, 3])^2)
"""


def test_integer_and_float_lists_become_constants_of_their_kind():
    spec = gradc.loads(MODEL.format(dtype="f32"))
    out = gradc.compile(spec, target="reference").run({"x": np.ones((2, 3), np.float32)})
    assert out["counts"].dtype == np.int64
    np.testing.assert_array_equal(out["counts"], [[2, 4, 6], [8, 10, 12]])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    loss = gradc.compile(spec, target="reference").run({"x": x})["L"]
    picked = (x * np.array([0.5, -1, 2], np.float32))[:, [2, 0]]
    want = np.mean(picked**2) + np.mean((x + np.array([1, 2, 3], np.float32)) ** 2)
    assert float(loss) == pytest.approx(want, rel=1e-6)


def test_constant_tensors_run_alike_on_cpu_and_reference():
    assert_cpu_matches_reference(gradc.loads(MODEL.format(dtype="f32")), batches=(1, 4))


def test_gradients_flow_past_constant_tensors():
    graph = gradc.loads(MODEL.format(dtype="f64")).graph
    x = np.random.default_rng(0).normal(size=(3, 3))
    for report in gradcheck(graph, {"x": x}, max_elements=50):
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


@pytest.mark.parametrize(("literal", "message"), [
    ("[[1, 2], [3]]", "rows of a constant tensor must have equal shapes: this one is [1], the first is [2]"),
    ("[1, x]", "a constant tensor holds numbers only"),
    ("[]", "an empty list is not a tensor"),
    ("[1e39, 0.5]", "number 1e39 is out of range for f32"),
    ("[99999999999999999999]", "does not fit a 64-bit integer"),
])
def test_a_malformed_constant_tensor_is_an_error_at_its_entry(literal, message):
    with pytest.raises(ModelError) as caught:
        gradc.loads(f"model m\ninput x: f32[N, 2]\noutput y = x * {literal}\n")
    assert message in str(caught.value)
    assert caught.value.location.line == 3
