"""A symbolic length besides the batch (``input x: f32[N, T, F]``): the model is checked with T symbolic, and
a program is compiled for the length its data has (the graph built again with the size in place of T)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gradc
from gradc.compiler.binding import lengths_in
from gradc.compiler.driver import prepare
from gradc.compiler.printers.text import to_text
from gradc.dsl.diagnostics import DataError, GradcError, ModelError
from gradc.runtime.training.checkpoints import spec_hash
from gradc.runtime.training.data import Scaling

MODEL = """model seq
input x: f32[N, {steps}, 3]
input n: i32[N]
input y: f32{target}
pred = x -> {layer}(4{options}) -> dense(1)
loss L = mse(pred, y)
"""
VARIANTS = {  # options, the target's shape
    "rnn-last": ("rnn", "", "[N, 1]"),
    "lstm-every": ("lstm", ", return_sequences=true", "[N, {steps}, 1]"),
    "gru-bidirectional": ("gru", ", bidirectional=true", "[N, 1]"),
    "lstm-padded": ("lstm", ", lengths=n", "[N, 1]"),
    "rnn-padded-bidirectional-every": ("rnn", ", lengths=n, bidirectional=true, return_sequences=true",
                                       "[N, {steps}, 1]"),
}


def source(variant: str, steps: str | int) -> str:
    layer, options, target = VARIANTS[variant]
    text = MODEL.format(steps=steps, layer=layer, options=options, target=target.format(steps=steps))
    return text if "lengths" in options else text.replace("input n: i32[N]\n", "")


def parsed_text(spec) -> str:
    return to_text(spec.graph, "parsed")


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_model_bound_to_a_length_is_the_model_written_with_that_length(variant):
    symbolic = gradc.loads(source(variant, "T"))
    assert symbolic.length_symbols == ("T",) and symbolic.graph.batch_symbol == "N"
    for steps in (1, 6):
        bound = symbolic.bind({"T": steps})
        assert bound.length_symbols == () and bound.dims == {"T": steps}
        assert parsed_text(bound) == parsed_text(gradc.loads(source(variant, steps)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_symbolic_graph_has_the_layers_types_with_T(variant):
    spec = gradc.loads(source(variant, "T"))
    pred = spec.graph.node(spec.graph.inputs()["y"]).type
    loss_inputs = spec.graph.node(spec.graph.losses["L"]).inputs
    assert {spec.graph.node(i).type for i in loss_inputs} == {pred}  # dense(1) of the layer: y's type, T kept
    assert ("T" in pred.shape) == ("every" in variant)
    scans = [n for n in spec.graph.nodes() if n.op == "scan"]
    assert scans and all(n.attrs["length"] == "T" for n in scans)


def test_programs_for_two_lengths_share_parameters_and_match_the_fixed_models():
    spec = gradc.loads(source("lstm-padded", "T"))
    rng = np.random.default_rng(3)
    short = gradc.compile(spec, target="reference", dims={"T": 4})
    for steps in (4, 7):
        program = gradc.compile(spec, target="reference", dims={"T": steps}, params=short.params)
        fixed = gradc.compile(gradc.loads(source("lstm-padded", steps)), target="reference", params=short.params)
        feeds = {"x": rng.normal(size=(3, steps, 3)).astype(np.float32), "n": np.array([steps, 2, 1], np.int32),
                 "y": rng.normal(size=(3, 1)).astype(np.float32)}
        mine, theirs = program.run(feeds, grad=True), fixed.run(feeds, grad=True)
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
        assert spec_hash(program.spec_graph) == spec_hash(short.spec_graph)  # one checkpoint for every length
    prebound = gradc.compile(spec.bind({"T": 5}), target="reference", params=short.params)
    assert spec_hash(prebound.spec_graph) == spec_hash(spec.graph) and prebound.dims == {"T": 5}


def test_without_a_size_compiling_says_how_to_give_one():
    spec = gradc.loads(source("rnn-last", "T"))
    with pytest.raises(GradcError, match=re.escape("--dim T=50") + ".*" + re.escape('dims={"T": 50}')):
        gradc.compile(spec, target="reference")
    with pytest.raises(GradcError, match="Q is not a symbolic length of model 'seq' \\(its symbolic lengths: T\\)"):
        spec.bind({"Q": 3})
    with pytest.raises(GradcError, match="at least 1"):
        spec.bind({"T": 0})
    with pytest.raises(GradcError, match="has the symbolic length T: the passes need its size"):
        prepare(spec.graph)


def test_the_length_comes_from_the_data_and_must_agree_across_inputs():
    graph = gradc.loads("model m\ninput a: f32[N, T, 2]\ninput b: f32[N, T]\noutput o = sum(a, axis=2) + b\n").graph
    zeros = lambda *shape: np.zeros(shape, np.float32)
    assert lengths_in(graph, {"a": zeros(5, 7, 2), "b": zeros(5, 7)}, "data.npz") == {"T": 7}
    with pytest.raises(DataError, match=r"data.npz: 'a' has T = 7 but 'b' has T = 8"):
        lengths_in(graph, {"a": zeros(5, 7, 2), "b": zeros(5, 8)}, "data.npz")
    with pytest.raises(DataError, match=re.escape("no input gives the length T of model 'm' (an array of the declared "
                                                  "rank for a: f32[N,T,2], b: f32[N,T])")):
        lengths_in(graph, {"a": np.float32(1.0)}, "data.npz")


def test_a_parameter_cannot_have_a_symbolic_length():
    with pytest.raises(ModelError, match="parameter 'w' must have a fixed shape; 'T' is a symbolic dimension"):
        gradc.loads("model m\ninput x: f32[N, T]\nparam w: f32[T]\noutput o = x * w\n")


def test_a_sequence_is_standardized_per_feature_over_its_steps():
    x = (np.random.default_rng(0).normal(size=(20, 6, 3)) * [1.0, 10.0, 3.0]).astype(np.float32)
    declared = gradc.loads(source("rnn-last", "T")).graph
    types = {"x": declared.node(declared.inputs()["x"]).type}
    mean, std = Scaling.fit({"x": x}, ["x"], types).stats["x"]
    assert mean.shape == std.shape == (1, 3)
    np.testing.assert_allclose(std[0], x.reshape(-1, 3).std(axis=0), rtol=1e-5)
    assert Scaling.fit({"x": x}, ["x"]).stats["x"][0].shape == (6, 3)  # a fixed T: per step and feature


def test_check_shows_the_length_and_dim_binds_it(cli, tmp_path):
    path = tmp_path / "seq.model"
    path.write_text(source("lstm-every", "T"))
    shown = cli("check", str(path))
    assert shown.code == 0 and "symbolic length T" in shown.out and "f32[N,T,4]" in shown.out
    bound = cli("check", str(path), "--dim", "T=12")
    assert bound.code == 0 and "f32[N,12,4]" in bound.out and "symbolic length" not in bound.out
    assert cli("graph", str(path)).code == 1  # the passes need a size
    assert "f32[N,12,4]" in cli("graph", str(path), "--dim", "T=12").out
    bad = cli("check", str(path), "--dim", "T=x")
    assert bad.code == 1 and "--dim expects NAME=SIZE" in bad.err


@pytest.mark.slow
def test_train_at_one_length_then_predict_and_evaluate_at_another(cli, tmp_path, monkeypatch):
    model = tmp_path / "seq.model"
    model.write_text(source("rnn-last", "T") + "train {\n  data = train.npz\n"
                     "  epochs = 2\n  batch = 16\n}\n")
    rng = np.random.default_rng(0)
    for name, steps in (("train.npz", 6), ("long.npz", 11)):
        x = rng.normal(size=(64, steps, 3)).astype(np.float32)
        np.savez(tmp_path / name, x=x, y=x.sum(axis=(1, 2))[:, None].astype(np.float32))
    np.savez(tmp_path / "long_x.npz", x=np.load(tmp_path / "long.npz")["x"])
    monkeypatch.chdir(tmp_path)
    trained = cli("train", str(model), "--out", "run", "-q")
    assert trained.code == 0, trained
    predicted = cli("predict", str(model), "--checkpoint", "run/best.npz", "--inputs", "long_x.npz", "-o", "p.npz")
    assert predicted.code == 0, predicted
    assert np.load(tmp_path / "p.npz")["pred"].shape == (64, 1)
    evaluated = cli("eval", str(model), "--checkpoint", "run/best.npz", "--data", "long.npz", "--split", "all")
    assert evaluated.code == 0 and "(64 examples)" in evaluated.out, evaluated
