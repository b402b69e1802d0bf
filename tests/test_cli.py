"""The command line, end to end, on every model in models/."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import MODELS, ROOT

from gradc.compiler.printers.common import KIND_COLORS

MODEL_IDS = [m.stem for m in MODELS]
TRANSFORMERS = ("transformer_sort",)


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
def test_check_prints_summary(cli, model):
    result = cli("check", model)
    assert result.code == 0, result
    assert "parameters:" in result.out and "FLOPs per example" in result.out
    assert "activation memory per example" in result.out


def test_check_summary_of_mlp(cli):
    out = cli("check", ROOT / "models" / "mlp_digits.model").out
    assert "logits.dense1  " in out and "8,320" in out
    assert "  logits.dense1.weight  param" in out and "8,192" in out
    assert "parameters: 17,226" in out
    assert "train: data=digits, optimizer=adam(lr=0.001" in out


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("stage", ["parsed", "autodiff", "optimized"])
def test_graph_formats(cli, tmp_path, model, stage):
    for fmt in ("text", "json", "dot", "svg"):
        out = tmp_path / f"g.{fmt}"
        result = cli("graph", model, "--stage", stage, "--format", fmt, "-o", out)
        assert result.code == 0, result
        text = out.read_text()
        if fmt == "json":
            data = json.loads(text)
            assert {"id", "op", "kind", "shape", "dtype", "line", "inputs"} <= set(data["nodes"][0])
        elif fmt == "svg":
            ET.fromstring(text)  # well-formed XML
            assert KIND_COLORS["input"] in text
        elif fmt == "dot":
            assert text.startswith("digraph")


def test_text_format_lines(cli):
    result = cli("graph", ROOT / "models" / "mlp_digits.model", "--stage", "parsed")
    assert "%6: f32[N,128] = relu(%5)" in result.out
    assert "# line 4" in result.out


def test_stages_diff_cleanly(cli):
    parsed = cli("graph", ROOT / "models" / "logistic_regression.model", "--stage", "parsed").out.splitlines()
    stable = cli("graph", ROOT / "models" / "logistic_regression.model", "--stage", "stabilize").out.splitlines()
    # node ids are stable: the unchanged nodes print identically in both stages
    assert set(parsed[1:7]) <= set(stable)


def test_svg_colours_and_parameters(cli, tmp_path):
    out = tmp_path / "g.svg"
    cli("graph", ROOT / "models" / "mlp_digits.model", "--stage", "parsed", "--format", "svg", "-o", out)
    text = out.read_text()
    for kind in ("input", "param", "intermediate", "output", "loss"):
        assert KIND_COLORS[kind] in text, kind


def test_svg_without_graphviz_has_every_node():
    import gradc
    from gradc.compiler.printers.svg import to_svg

    g = gradc.graph(ROOT / "models" / "tiny_regression.model", "optimized")
    svg = to_svg(g, "optimized", use_graphviz=False)
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert sum(1 for t in texts if t and t.startswith("%")) == len(g)


def test_svg_without_graphviz_draws_each_scan_body_in_a_panel_below():
    """Every node of the graph and of each scan's body (the forward step and its gradient's) is drawn once,
    the bodies in dashed panels below the graph, one under the other, inside the picture."""
    import gradc
    from gradc.compiler.printers.svg import to_svg

    g = gradc.graph(ROOT / "models" / "rnn_parity.model", "optimized")
    bodies = [n.attrs["body"] for n in g.nodes() if n.op == "scan"]
    root = ET.fromstring(to_svg(g, "optimized", use_graphviz=False))
    svg = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{svg}text")]
    assert sum(1 for t in texts if t and t.startswith("%")) == len(g) + sum(len(b) for b in bodies)
    assert sum(1 for t in texts if t and t.startswith("body of %")) == len(bodies) == 2
    panels = [r for r in root.iter(f"{svg}rect") if r.get("class") == "body"]
    nodes = [r for r in root.iter(f"{svg}rect") if (r.get("class") or "").startswith("node")]
    height = float(root.get("height"))
    top_of_panels = min(float(p.get("y")) for p in panels)
    assert all(float(n.get("y")) + float(n.get("height")) <= height for n in nodes)
    ranges = sorted((float(p.get("y")), float(p.get("y")) + float(p.get("height"))) for p in panels)
    assert ranges[0][1] <= ranges[1][0] <= height  # one under the other
    graph_nodes = [n for n in nodes if float(n.get("y")) < top_of_panels]
    assert len(graph_nodes) == sum(1 for n in g.nodes() if g.kind(n.id) != "constant")  # constants: ellipses


def test_run_with_npz_files(cli, tmp_path):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, a=np.float32(3), b=np.float32(1), c=np.float32(5))
    out = tmp_path / "out.npz"
    result = cli("run", ROOT / "models" / "shared_subexpression.model", "--inputs", inputs, "--grad", "-o", out)
    assert result.code == 0, result
    with np.load(out, allow_pickle=False) as data:
        assert float(data["y"]) == 35
        assert [float(data[f"grad/{k}"]) for k in "abc"] == [7, 24, 5]


def test_run_with_params_file(cli, tmp_path):
    params = tmp_path / "p.npz"
    np.savez(params, w1=1.0, b1=0.0, w2=1.0, b2=0.0, w3=2.0, b3=1.0)
    result = cli("run", ROOT / "models" / "tiny_regression.model", "-i", "x=0,0", "-i", "t=0,0", "--params", params)
    assert result.code == 0, result
    # h1 = 0.5, h2 = sigmoid(0.5), f3 = 2 * sigmoid(0.5) + 1
    expected = 2 / (1 + np.exp(-0.5)) + 1
    assert f"{expected:.6f}" in result.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["-i", "a=1", "-i", "b=2"], "missing input 'c'"),
        (["-i", "a=1", "-i", "b=2", "-i", "c=3", "-i", "d=4"], "unexpected input 'd'"),
        (["-i", "a=1,2", "-i", "b=2", "-i", "c=3"], "input 'a' expects f32, got an array of shape (2,)"),
        (["-i", "a=nan", "-i", "b=2", "-i", "c=3"], "-i a: nan is not a finite number"),
        (["--inputs", "/nonexistent/in.npz"], "inputs file not found"),
        (["--params", "/nonexistent/p.npz", "-i", "a=1"], "parameters file not found"),
        (["-i", "a"], "-i expects NAME=VALUE"),
    ],
)
def test_run_data_errors(cli, args, message):
    result = cli("run", ROOT / "models" / "shared_subexpression.model", *args)
    assert result.code == 1
    assert message in result.err, result.err
    assert "Traceback" not in result.err


def test_run_batch_mismatch_and_label_range(cli, tmp_path):
    model = ROOT / "models" / "mlp_digits.model"
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 64), np.float32), y=np.zeros(3, np.int64))
    assert "input 'y' has N=3 on axis 0 but input 'x' has N=4" in cli("run", model, "--inputs", bad).err
    np.savez(bad, x=np.zeros((4, 64), np.float32), y=np.array([0, 1, 2, 10]))
    assert "label 10 in input 'y' is out of range [0, 10)" in cli("run", model, "--inputs", bad).err
    np.savez(bad, x=np.zeros((4, 64), np.float32), y=np.array([0.5, 1, 2, 1]))
    assert "needs integer values" in cli("run", model, "--inputs", bad).err
    bad.write_text("not a zip")
    assert "cannot read inputs file" in cli("run", model, "--inputs", bad).err


def test_output_is_written_atomically(cli, tmp_path):
    out = tmp_path / "missing_dir" / "out.npz"
    result = cli("run", ROOT / "models" / "polynomial.model", "-i", "x=1", "-i", "y=2", "-o", out)
    assert result.code == 1 and "does not exist" in result.err
    assert not list(tmp_path.glob("**/*.tmp"))


# grammar_lm's blocks are transformer_sort's (causal, with learned positions: tests/test_attention.py checks
# both options' gradients)
GRADCHECKED = [m for m in MODELS if m.stem != "grammar_lm"]


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m.stem in TRANSFORMERS else m
                                   for m in GRADCHECKED], ids=[m.stem for m in GRADCHECKED])  # about 10 s each
def test_gradcheck_passes_on_every_model(cli, model):
    result = cli("gradcheck", model)
    assert result.code == 0, result
    assert "gradcheck passed" in result.out


def test_gradcheck_fails_loudly_when_gradients_are_wrong(cli, monkeypatch):
    from gradc.compiler.ops import elementwise, registry

    broken = registry.REGISTRY["sigmoid"]
    monkeypatch.setitem(
        registry.REGISTRY, "sigmoid",
        type(broken)(**{**broken.__dict__, "grad": lambda b, n, g: [lambda: b.mul(g, n.id)]}),
    )
    assert elementwise  # the module that declared the op
    result = cli("gradcheck", ROOT / "models" / "tiny_regression.model")
    assert result.code == 1
    assert "FAIL" in result.out


@pytest.mark.slow
def test_console_script_and_module(tmp_path):
    model = ROOT / "models" / "polynomial.model"
    for cmd in (["gradc"], [sys.executable, "-m", "gradc"]):
        done = subprocess.run([*cmd, "run", str(model), "-i", "x=1", "-i", "y=2", "--grad"],
                              capture_output=True, text=True, check=False, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "grad/x  10" in done.stdout


def test_bad_model_exit_status_from_a_real_process(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_text("model m\ninput x: f32\noutput y = rleu(x)\n")
    done = subprocess.run(["gradc", "check", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"{bad}:3:12: error: unknown op 'rleu'; did you mean 'relu'?")
    assert "Traceback" not in done.stderr


def test_writing_to_a_device_keeps_the_device(cli):
    import os
    import stat

    result = cli("graph", ROOT / "models" / "polynomial.model", "-o", os.devnull)
    assert result.code == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


# ------------------------------------------------------------------ --emit (issue 12, item 7)


def test_emit_onto_an_existing_file_is_an_error(cli, tmp_path):
    target = tmp_path / "notes"
    target.write_text("keep me")
    result = cli("compile", ROOT / "models" / "polynomial.model", "--emit", target)
    assert result.code == 1, result
    assert f"gradc: error: --emit {target}: it exists and is not a folder" in result.err
    assert target.read_text() == "keep me"


def test_emit_into_a_py_file(cli, tmp_path):
    target = tmp_path / "program.py"
    target.write_text("old")
    for _ in range(2):  # a second time over the file it wrote
        result = cli("compile", ROOT / "models" / "polynomial.model", "--emit", target)
        assert result.code == 0, result
        assert "def forward(" in target.read_text()
    assert cli("compile", ROOT / "models" / "polynomial.model", "--emit", tmp_path / "no" / "p.py").code == 1


def test_emit_for_a_model_with_a_300_character_name(cli, tmp_path):
    name = "m" * 300
    source = (ROOT / "models" / "polynomial.model").read_text().replace("model polynomial", f"model {name}")
    model = tmp_path / "long.model"
    model.write_text(source)
    result = cli("compile", model, "--emit", tmp_path / "src")
    assert result.code == 0, result
    (written,) = (tmp_path / "src").iterdir()
    assert written.name.startswith("m" * 80) and written.name.endswith("_cpu.py") and len(written.name) < 255


# ------------------------------------------------------------------ did you mean (issue 12, item 27)


@pytest.mark.parametrize("args, message, suggestion", [
    (["trian", "m.model"], "invalid choice: 'trian' (choose from 'check', ", "train"),
    (["graph", "m.model", "--stage", "optimised"], "invalid choice: 'optimised' (choose from ", "optimized"),
    (["graph", "m.model", "--format", "svgg"], "invalid choice: 'svgg'", "svg"),
    (["compile", "m.model", "--targte", "cpu"], "unrecognized arguments: --targte cpu", "--target"),
])
def test_mistyped_command_or_choice_gets_did_you_mean(capsys, args, message, suggestion):
    from gradc.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.rstrip().endswith(f"; did you mean '{suggestion}'?"), err


def test_choice_with_nothing_close_gets_no_guess(capsys):
    from gradc.cli import main

    with pytest.raises(SystemExit):
        main(["graph", "m.model", "--stage", "zzz"])
    assert "did you mean" not in capsys.readouterr().err
