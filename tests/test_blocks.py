"""Blocks: reusable, parameterized pieces of network defined in the language, used like layers, repeated,
nested and imported, with parameters named after each use and errors located in the block and at the use."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from test_targets import assert_cpu_matches_reference

import gradc
from gradc.dsl.diagnostics import ModelError
from gradc.runtime.execution.gradcheck import gradcheck

NESTED = """block affine(x, units=3) {
  param scale: f64[units] = 1.0
  return x -> dense(units) -> tanh
}
block pair(x, units=3) {
  a = x -> affine(units)
  b = a -> affine(units) -> relu
  return a + b, b
}
model nested
input x: f64[N, 3]
h, g = pair(x, units=3)
o, p = pair(h, 3)
out = o -> dense(2)
loss L = mean(out^2) + mean(g) + mean(p)
"""


def test_parameters_are_named_after_each_use_of_each_block():
    names = sorted(gradc.loads(NESTED).graph.params())
    assert "h.pair1.affine1.dense1.weight" in names
    assert "h.pair1.affine2.scale" in names
    assert "o.pair1.affine2.dense1.bias" in names
    assert len([n for n in names if n.endswith(".scale")]) == 4


def test_a_nested_block_with_two_results_has_gradients_that_match_finite_differences():
    for report in gradcheck(gradc.loads(NESTED).graph, max_elements=60):
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_blocks_run_alike_on_cpu_and_reference():
    assert_cpu_matches_reference(gradc.loads(NESTED.replace("f64", "f32")), batches=(4,))


RESNET = """import std
model resnet24
input x: f32[N, 64]
input y: i64[N]
logits = x -> dense(64) -> relu -> residual_mlp(64, repeat=24) -> dense(10)
loss L = cross_entropy(logits, y)
"""


def test_a_24_block_residual_network_fits_in_15_lines():
    assert len(RESNET.splitlines()) <= 15
    graph = gradc.loads(RESNET).graph
    uses = {name.split(".")[1] for name in graph.params() if ".residual_mlp" in name}
    assert uses == {f"residual_mlp{k}" for k in range(1, 25)}
    assert len(graph.params()) == 2 + 24 * 4 + 2


def test_a_block_is_the_same_network_as_its_statements_written_out():
    inline = """model m
input x: f64[N, 4]
h = x -> dense(4) -> relu -> dense(4)
y = relu(x + h)
loss L = mean(y^2)
"""
    with_block = """import std
model m
input x: f64[N, 4]
y = x -> residual_mlp(4)
loss L = mean(y^2)
"""
    a, b = gradc.loads(inline).graph, gradc.loads(with_block).graph
    x = np.random.default_rng(1).normal(size=(5, 4))
    params = {name: np.random.default_rng(len(name)).normal(size=a.node(i).type.shape)
              for name, i in a.params().items()}
    renamed = {name.replace("h.", "y.residual_mlp1."): value for name, value in params.items()}
    ra = gradc.compile(gradc.loads(inline), target="reference")
    rb = gradc.compile(gradc.loads(with_block), target="reference")
    ra.state.params.update(params)
    rb.state.params.update(renamed)
    assert set(rb.state.params) == set(renamed)
    np.testing.assert_allclose(ra.run({"x": x})["L"], rb.run({"x": x})["L"], rtol=1e-12)
    assert b.node(b.outputs.get("y", b.losses["L"])) is not None


def test_blocks_are_imported_from_files_relative_to_the_importer(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "parts.model").write_text("import std\nblock twice(x) {\n  return x * 2\n}\n")
    model = tmp_path / "m.model"
    model.write_text('import "lib/parts.model"\nmodel m\ninput x: f32[N, 8]\n'
                     "y = x -> twice -> encoder(code=2, hidden=4) -> decoder(features=8, hidden=4)\n"
                     "loss L = mse(y, x)\n")
    graph = gradc.load(model).graph
    assert "y.encoder1.dense2.weight" in graph.params()
    assert graph.node(graph.params()["y.decoder1.dense2.weight"]).type.shape == (4, 8)


ERRORS = [
    # (model text after the block, line, col, message fragment, note fragment)
    ("y = x -> proj(2, unit=3)\n", 7, 18, "unknown argument 'unit' for block proj; did you mean 'units'?", None),
    ("y = proj()\n", 7, 5, "block proj takes 1 input(s) (x), got 0", None),
    ("y = x -> proj(w)\n", 7, 15, "argument 'units' of block proj must be a literal", None),
    ("y = x -> proj(units=2, repeat=0)\n", 7, 31, "repeat must be an integer from 1 to 10000", None),
    ("y = x -> proj(2, repeat=2)\n", 3, 12, "matmul: inner dimensions do not match: f32[N,2] @ f32[3,2]",
     "in block 'proj', used at"),
    ("z = proj\n", 7, 5, "'proj' is a block; call it", None),
    ("a, b = x -> proj(4)\n", 7, 1, "2 names, but the value has 1 result(s)", None),
    ("block two(x) {\n  return x, x\n}\ny = x -> two -> relu\n", 10, 10, "this value has 2 results; name them", None),
]
BLOCK = "block proj(x, units=4) {\n  param w: f32[3, units] = zeros\n  return x @ w\n}\nmodel m\ninput x: f32[N, 3]\n"


@pytest.mark.parametrize("tail, line, col, fragment, note", ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_block_errors_are_located(cli, write_model, tail, line, col, fragment, note):
    path = write_model(BLOCK + tail)
    result = cli("check", path)
    assert result.code == 1, result
    first = result.err.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: error: ") and fragment in first, result.err
    if note:
        assert f"note: {note} {path}:7:10" in result.err, result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("source, fragment", [
    ("block b(x) {\n  h = x + q\n  return h\n}\nmodel m\ninput x: f32[N, 3]\ninput q: f32[N, 3]\ny = b(x)\n",
     "unknown name 'q' in block b"),
    ("block relu(x) {\n  return x\n}\nmodel m\n", "block 'relu' has the name of an op"),
    ("block b(x) {\n  return x\n}\nblock b(x) {\n  return x\n}\nmodel m\n", "block 'b' is defined twice"),
    ("import nope\nmodel m\n", "no block library named 'nope'"),
    ('import "missing.model"\nmodel m\n', "cannot import missing.model: no such file"),
    ("block b(x) {\n  h = x\n}\nmodel m\ninput x: f32[N, 3]\ny = b(x)\n", "block b returns nothing"),
    ("block b(x) {\n  return x\n  h = x\n}\nmodel m\n", "'return' must be the last statement of a block"),
])
def test_more_block_mistakes(cli, write_model, source, fragment):
    result = cli("check", write_model(source))
    assert result.code == 1 and fragment in result.err, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


def test_an_import_cycle_is_named(tmp_path):
    (tmp_path / "a.model").write_text('import "b.model"\n')
    (tmp_path / "b.model").write_text('import "a.model"\n')
    main = tmp_path / "m.model"
    main.write_text('import "a.model"\nmodel m\n')
    with pytest.raises(ModelError, match=re.escape("import cycle: m.model -> a.model -> b.model -> a.model")):
        gradc.load(main)


def test_check_nests_each_use_of_a_block_like_keras(cli, write_model):
    result = cli("check", write_model(NESTED))
    assert result.code == 0, result
    rows = result.out.splitlines()
    use = next(i for i, r in enumerate(rows) if r.startswith("h.pair1 "))
    assert rows[use].split()[1] == "pair"
    assert rows[use + 1].startswith("  h.pair1.affine1 ")  # a nested use, one level in
    assert any(r.startswith("    h.pair1.affine1.dense1 ") for r in rows)  # its layer, two levels in


def test_graph_drawings_show_each_use_of_a_block_as_a_labelled_cluster(cli, write_model, tmp_path):
    path = write_model(NESTED)
    dot = cli("graph", path, "--stage", "parsed", "--format", "dot")
    assert dot.code == 0, dot
    assert 'label="h.pair1"' in dot.out and 'label="h.pair1.affine2"' in dot.out
    assert dot.out.index('label="h.pair1"') < dot.out.index('label="h.pair1.affine1"')  # nested inside
    svg = tmp_path / "g.svg"
    assert cli("graph", path, "--stage", "parsed", "--format", "svg", "-o", str(svg)).code == 0
    text = svg.read_text()
    assert "h.pair1.affine2" in text  # the label, drawn by Graphviz where it is installed, else by gradc
    if shutil.which("dot") is None:
        assert text.count('class="block"') == 6  # two uses of pair, each holding two of affine
