"""ONNX export: every model in models/ as an ONNX model that onnx.checker accepts and onnxruntime runs to
gradc's outputs on the test split (the training standardization folded in); names from the .model file; an
op without an ONNX form named plainly. Skipped, saying why, without the onnx extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import gradc
from gradc.commands.common import load_spec
from gradc.runtime.training.data import split
from gradc.runtime.training.fit import data_lengths, load_data, prepare, resolve_settings

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.model"))
MISSING = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f'{", ".join(MISSING)} not installed (pip install -e ".[onnx]")')


def _program_and_test_inputs(path: Path):
    """The model (initialized parameters, the standardization of its data's training split) and raw inputs of
    its test split (random ones for a model without data)."""
    spec = load_spec(str(path))
    dims = data_lengths(spec.graph, None, spec.train) if spec.length_symbols else None
    program = gradc.compile(spec, dims=dims, seed=1)
    settings = resolve_settings(program)
    if settings.get("data") is None:
        rng = np.random.default_rng(0)
        inputs = {name: rng.normal(size=tuple(7 if isinstance(d, str) else d for d in t.shape)).astype(
            t.numpy_dtype) for name, t in program.feed_spec.declared.items()}
        return program, inputs
    program.scaling = prepare(program, None, settings).scaling
    _, _, _, arrays = load_data(program.source, None, settings)
    return program, split(arrays, settings["seed"], settings["validation"], settings["test"]).test


@needs_onnx
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_model_runs_in_onnxruntime_as_in_gradc(path, tmp_path):
    import onnx
    import onnxruntime

    program, inputs = _program_and_test_inputs(path)
    out = tmp_path / f"{path.stem}.onnx"
    outputs = gradc.export(program, out)
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == outputs == list(program.source.outputs)
    for value in model.graph.input:  # the batch stays symbolic
        declared = program.feed_spec.declared[value.name]
        if declared.rank and isinstance(declared.shape[0], str):
            assert value.type.tensor_type.shape.dim[0].dim_param == declared.shape[0]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    want = program.predict(inputs)
    for name, value in zip(outputs, got, strict=True):
        np.testing.assert_allclose(value, want[name], rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want[name]).max())),
                                   err_msg=f"{path.stem}: {name}")


@needs_onnx
def test_names_follow_the_model_file(tmp_path):
    import onnx

    program = gradc.compile(gradc.loads("""model named
input x: f32[N, 4]
hidden = x -> dense(3) -> tanh
output scores = hidden -> dense(2)
"""))
    gradc.export(program, tmp_path / "named.onnx")
    model = onnx.load(tmp_path / "named.onnx")
    produced = {name for node in model.graph.node for name in node.output}
    assert {"hidden", "scores"} <= produced
    assert {"hidden.dense1.weight", "scores.dense1.weight"} <= {t.name for t in model.graph.initializer} or \
        any(t.name.endswith("weight") for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["x"]


@needs_onnx
def test_an_op_without_an_onnx_form_is_named(tmp_path, cli):
    source = tmp_path / "cum.model"
    source.write_text("model cum\ninput x: f32[N, 5]\noutput c = cumsum(x, axis=1)\n")
    result = cli("export", str(source), "-o", str(tmp_path / "cum.onnx"))
    assert result.code == 1
    assert "no ONNX form for op 'cumsum'" in result.err and "line 3" in result.err
    assert not (tmp_path / "cum.onnx").exists()


@needs_onnx
def test_export_from_the_command_line_with_a_checkpoint(tmp_path, cli, monkeypatch):
    import onnxruntime

    monkeypatch.chdir(tmp_path)
    model = ROOT / "models" / "softmax_regression.model"
    assert cli("train", str(model), "--epochs", "2", "--out", "run", "-q").code == 0
    result = cli("export", str(model), "--checkpoint", "run/last.npz", "-o", "m.onnx")
    assert result.code == 0, result
    assert "onnx.checker accepts it" in result.out and "standardized as in training" in result.out
    program = gradc.load_checkpoint(str(model), "run/last.npz")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32) * 3 + 5
    session = onnxruntime.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    np.testing.assert_allclose(session.run(None, {name: x})[0], program.predict({name: x})["probs"], rtol=1e-5,
                               atol=1e-6)


def test_without_onnx_the_command_names_the_extra(tmp_path, cli, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    result = cli("export", str(ROOT / "models" / "mlp_digits.model"), "-o", str(tmp_path / "m.onnx"))
    assert result.code == 1 and 'pip install -e ".[onnx]"' in result.err


# ---------------------------------------------------------------- import

RECURRENT = {"gru_sine", "lstm_adding", "rnn_parity"}  # exported as ONNX Scan, which the importer lacks
ROUND_TRIP = [p for p in MODELS if p.stem != "grammar_lm"]  # its blocks are transformer_sort's


@needs_onnx
@pytest.mark.parametrize("path", ROUND_TRIP, ids=[p.stem for p in ROUND_TRIP])
def test_export_then_import_gives_the_same_outputs(path, tmp_path):
    from gradc.onnx_import import ImportFailure, import_onnx

    program, inputs = _program_and_test_inputs(path)
    gradc.export(program, tmp_path / "m.onnx")
    if path.stem in RECURRENT:
        with pytest.raises(ImportFailure, match="is op Scan, which the language has no form for"):
            import_onnx(tmp_path / "m.onnx")
        return
    imported = import_onnx(tmp_path / "m.onnx")
    again = gradc.compile(gradc.loads(imported.text), params=imported.params,
                          dims=dict(program.dims) if getattr(program, "dims", None) else None)
    want = program.predict(inputs)
    got = again.run({name: inputs[name] for name in again.feed_spec.declared})
    for name in imported.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(
            want[name]).max())), err_msg=f"{path.stem}: {name}")


@needs_onnx
def test_import_from_the_command_line_then_run_graph_and_train(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ROOT / "models" / "mlp_digits.model"
    assert cli("export", str(model), "-o", "m.onnx").code == 0
    result = cli("import", "m.onnx", "-o", "m.model")
    assert result.code == 0, result
    assert "wrote m.model" in result.out and Path("m.npz").exists()
    text = Path("m.model").read_text()
    assert "loss L = cross_entropy(logits, label)" in text  # the hint, commented out
    assert cli("graph", "m.model", "--stage", "parsed").code == 0
    np.savez("x.npz", x=np.full((2, 64), 0.5, np.float32))
    ran = cli("run", "m.model", "--params", "m.npz", "--inputs", "x.npz")
    assert ran.code == 0 and "probs" in ran.out, ran
    Path("m.model").write_text(text.replace("# input label", "input label").replace("# loss L", "loss L"))
    trained = cli("train", "m.model", "--params", "m.npz", "--data", "digits", "--epochs", "1", "-q", "--out", "r")
    assert trained.code == 0, trained


@needs_onnx
def test_import_names_an_op_the_language_lacks(tmp_path, cli):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Hardmax", ["x"], ["y"], name="pick")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "h.onnx")
    result = cli("import", str(tmp_path / "h.onnx"), "-o", str(tmp_path / "h.model"))
    assert result.code == 1 and "node 'pick' is op Hardmax" in result.err
    assert not (tmp_path / "h.model").exists()
    missing = cli("import", str(tmp_path / "nothing.onnx"), "-o", str(tmp_path / "n.model"))
    assert missing.code == 1 and "ONNX file not found" in missing.err
