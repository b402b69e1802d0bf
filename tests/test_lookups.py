"""Integers and lookups in models: an embedding's weight gradient adds up over repeated ids, an id outside the
table reads zeros and adds nothing, and argmax/one_hot agree with NumPy, on the reference and the cpu target."""

from __future__ import annotations

import numpy as np
from test_targets import assert_cpu_matches_reference

import gradc
from gradc.runtime.execution.gradcheck import gradcheck

EMBEDDING = """model emb
input ids: i64[N, 3]
input t: f64[N, 3, 4]
h = ids -> embedding(6, 4)
loss L = mean((h * 2 - t)^2)
"""


def feeds(dtype=np.float64):
    rng = np.random.default_rng(0)
    ids = np.array([[0, 2, 2], [5, 2, 0], [1, 1, 1]])  # repeats, within each row and across rows
    return {"ids": ids, "t": rng.normal(size=(3, 3, 4)).astype(dtype)}


def test_an_embedding_gradient_adds_up_over_repeated_ids():
    graph = gradc.loads(EMBEDDING).graph
    reports = gradcheck(graph, feeds(), max_elements=100)
    assert {r.name for r in reports} >= {"h.embedding1.weight"}
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_an_embedding_runs_alike_on_cpu_and_reference():
    assert_cpu_matches_reference(gradc.loads(EMBEDDING.replace("f64", "f32")), inputs=feeds(np.float32))


def test_an_id_outside_the_table_reads_zeros_and_takes_no_gradient():
    spec = gradc.loads(EMBEDDING.replace("f64", "f32"))
    cpu = gradc.compile(spec, target="cpu")
    weight = cpu.state.params["h.embedding1.weight"]
    inputs = {"ids": np.array([[0, 6, -1]]), "t": np.zeros((1, 3, 4), np.float32)}
    out = cpu.run(inputs, grad=True)
    grad = out["grad/h.embedding1.weight"]
    expected_row = 2 * 2 * (2 * weight[0]) / 12  # d/dw0 of mean((2 w0 - 0)^2 over 12 elements), row 0 only
    np.testing.assert_allclose(grad[0], expected_row, rtol=1e-5)
    assert not grad[1:].any()
    np.testing.assert_allclose(out["L"], np.sum((2 * weight[0]) ** 2) / 12, rtol=1e-5)


LOOKUPS = """model lookups
input x: f32[N, 5]
input y: i64[N]
output best = argmax(x)
output worst = argmin(x, axis=-1)
output picked = sum(one_hot(y, 5) * x, axis=-1)
"""


def test_argmax_argmin_and_one_hot_agree_with_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    x[0, 1] = x[0, 3] = 9.0  # a tie: the first wins
    y = rng.integers(0, 5, size=7)
    for target in ("reference", "cpu"):
        out = gradc.compile(gradc.loads(LOOKUPS), target=target).run({"x": x, "y": y})
        np.testing.assert_array_equal(out["best"], np.argmax(x, axis=-1))
        np.testing.assert_array_equal(out["worst"], np.argmin(x, axis=-1))
        assert out["best"].dtype == np.int64 and out["best"][0] == 1
        np.testing.assert_allclose(out["picked"], x[np.arange(7), y], rtol=1e-6)


def test_no_gradient_flows_through_an_argmax_into_a_one_hot():
    """An integer value is piecewise constant: the loss's gradient reaches x only through the product (seed 76
    of the random models found autodiff asking one_hot for a gradient rule)."""
    spec = gradc.loads("model m\ninput x: f64[N, 3]\nloss L = mean(x * one_hot(argmax(x + 1, axis=-1), 3))\n")
    x = np.array([[0.1, 0.7, -0.2], [1.5, 0.3, 0.2]])
    for report in gradcheck(spec.graph, {"x": x}, max_elements=10):
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"
    grads = gradc.compile(spec, target="reference").run({"x": x}, grad=True)
    np.testing.assert_allclose(grads["grad/x"], [[0, 1 / 6, 0], [1 / 6, 0, 0]])
