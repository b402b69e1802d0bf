"""What a user's own data, settings and files meet (issue 12): feature counts in predict, binding by role,
numeric class labels, split sizes, odd CSV files, crafted checkpoints, command-line values, result files."""

import json
import os

import numpy as np
import pytest
from conftest import ROOT

import gradc
from gradc.dsl.diagnostics import DataError, GradcError, ModelError
from gradc.runtime.training import checkpoints, datasets
from gradc.runtime.training.data import find_task, split

MODELS = ROOT / "models"
IRIS = MODELS / "softmax_regression.model"
TINY = MODELS / "tiny_regression.model"


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A short softmax_regression run on iris: its folder, with best.npz and last.npz."""
    out = tmp_path_factory.mktemp("iris") / "run"
    gradc.compile(IRIS).fit(out=out, quiet=True, epochs=3)
    return out


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- 8, 11: predict checks the feature count


def test_predict_refuses_too_few_features_in_npz(cli, iris_run, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((30, 1)))
    result = cli("predict", IRIS, "--checkpoint", iris_run / "best.npz", "--inputs", tmp_path / "x.npz",
                 "-o", tmp_path / "p.npz")
    assert result.code == 1 and "input 'x' expects f32[N,4], got an array of shape (30, 1)" in result.err
    assert not (tmp_path / "p.npz").exists()


def test_predict_refuses_a_vector_for_a_matrix_input(iris_run):
    program = gradc.load_checkpoint(IRIS, iris_run / "best.npz")
    with pytest.raises(DataError, match=r"expects f32\[N,4\], got an array of shape \(4,\)"):
        program.predict({"x": np.ones(4)})


@pytest.mark.parametrize("columns, message", [
    (1, "has 1 column; input 'x' is f32[N,4], 4 features per example"),
    (5, "has 5 columns; input 'x' is f32[N,4], 4 features per example; if it still has its label column"),
])
def test_predict_refuses_a_csv_with_the_wrong_column_count(cli, iris_run, tmp_path, columns, message):
    table = datasets.iris(0)
    rows = np.column_stack([table.features, table.labels])[:6, :columns]
    path = write_csv(tmp_path / "x.csv", [f"c{i}" for i in range(columns)], rows)
    result = cli("predict", IRIS, "--checkpoint", iris_run / "best.npz", "--inputs", path, "-o", tmp_path / "p.npz")
    assert result.code == 1 and message in result.err, result


def test_predict_names_a_label_column_left_in(cli, iris_run, tmp_path):
    table = datasets.iris(0)
    path = write_csv(tmp_path / "x.csv", ["a", "b", "c", "d", "y"], np.column_stack([table.features, table.labels])[:4])
    result = cli("predict", IRIS, "--checkpoint", iris_run / "best.npz", "--inputs", path, "-o", tmp_path / "p.npz")
    assert result.code == 1 and "column 'y' is the label: remove it" in result.err


def test_predict_reads_one_csv_column_for_a_vector_input(cli, tmp_path):
    gradc.compile(TINY).fit(out=tmp_path / "run", quiet=True, epochs=1)
    path = write_csv(tmp_path / "x.csv", ["x"], [[0.5], [1.0]])
    result = cli("predict", TINY, "--checkpoint", tmp_path / "run" / "best.npz", "--inputs", path,
                 "-o", tmp_path / "p.csv")
    assert result.code == 0, result
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "f3" and "class" not in result.out
    two = write_csv(tmp_path / "x2.csv", ["x", "t"], [[0.5, 1.0]])
    refused = cli("predict", TINY, "--checkpoint", tmp_path / "run" / "best.npz", "--inputs", two,
                  "-o", tmp_path / "q.csv")
    assert refused.code == 1 and "column 't' is the label: remove it" in refused.err


# ---------------------------------------------------------------- 9: a CSV with only a label, scalar inputs


def test_a_csv_with_only_a_label_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["y"], [[0], [1]])
    with pytest.raises(DataError, match="the only column is the label column 'y'"):
        datasets.read_csv(path)


def test_npz_data_for_a_model_of_scalar_inputs(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(10.0), y=np.arange(10.0))
    program = gradc.compile(gradc.loads("model s\ninput x: f32\ninput y: f32\nparam w: f32 = 1\n"
                                        "loss L = mse(w * x, y)\n"))
    with pytest.raises(DataError, match=r"are scalars .*every input needs a batch axis \(declare it as f32\[N\]\)"):
        program.fit(str(tmp_path / "d.npz"), quiet=True, write_run=False)


# ---------------------------------------------------------------- 10: crafted checkpoints


def _crafted(tmp_path, source: str, change) -> str:
    arrays = dict(np.load(source))
    meta = json.loads(arrays["meta"].tobytes())
    result = change(arrays, meta)
    if result is not None:
        arrays = result
    elif "meta" in arrays:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = tmp_path / "crafted.npz"
    np.savez(path, **arrays)
    return str(path)


def _set(key, value):
    return lambda arrays, meta: meta.__setitem__(key, value)


def _drop(key):
    return lambda arrays, meta: meta.pop(key) and None


def _reshape_a_parameter(arrays):
    name = next(k for k in arrays if k.startswith("param/")).removeprefix("param/")
    for key in (f"param/{name}", f"optimizer/{name}/0", f"optimizer/{name}/1", f"best/{name}"):
        if key in arrays:
            arrays[key] = np.zeros(2, np.float32)


def _arrays(change):
    def apply(arrays, meta):
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        change(arrays)
        return arrays
    return apply


CRAFTED = {
    "meta is a list": (lambda a, m: {**a, "meta": np.frombuffer(b"[1, 2]", dtype=np.uint8)}, "a JSON object"),
    "meta is floats": (lambda a, m: {**a, "meta": np.zeros(3)}, "JSON text stored as bytes"),
    "no format": (_drop("format"), "checkpoint format None is not 1"),
    "no optimizer": (_drop("optimizer"), "the metadata has no 'optimizer'"),
    "unknown optimizer": (_set("optimizer", "adamw"), "metadata 'optimizer' must be an optimizer"),
    "hyperparameters a string": (_set("hyperparameters", "fast"), "'hyperparameters' must be an object of finite"),
    "unknown hyperparameter": (_set("hyperparameters", {"lr": 0.1, "warp": 2}), "has 'warp', which optimizer adam"),
    "step a string": (_set("step", "7"), "metadata 'step' must be a step count"),
    "negative epoch": (_set("epoch", -3), "metadata 'epoch' must be an epoch number"),
    "settings a list": (_set("settings", [1]), "metadata 'settings' must be an object of train settings"),
    "settings with lr -1": (lambda a, m: m["settings"]["optimizer"]["args"].__setitem__("lr", -1),
                            "argument 'lr' of adam must be > 0"),
    "history not a list": (_set("history", {"epoch": 1}), "metadata 'history' must be a list of epoch records"),
    "early_stopping a string": (_set("early_stopping", "yes"), "metadata 'early_stopping' must be an object"),
    "classes numbers": (_set("classes", [1, 2]), "metadata 'classes' must be a list of class names"),
    "optimizer state index": (_arrays(lambda a: a.__setitem__("optimizer/dense.weight/x", np.zeros(1))),
                              "unexpected entry 'optimizer/dense.weight/x'"),
    "optimizer state missing": (_arrays(lambda a: a.pop(next(k for k in a if k.startswith("optimizer/")))),
                                "adam keeps 2 per parameter"),
    "optimizer state shape": (_arrays(lambda a: a.__setitem__(next(k for k in a if k.startswith("optimizer/")),
                                                              np.zeros(2, np.float32))), "has shape (2,), but"),
    "state of no parameter": (_arrays(lambda a: a.update({"optimizer/ghost/0": np.zeros(1), "optimizer/ghost/1":
                                                          np.zeros(1)})), "not a parameter in the checkpoint"),
    "scaling without std": (_arrays(lambda a: a.pop("scaling/std/x")), "'scaling/mean/x' has no 'scaling/std/x'"),
    "scaling of strings": (_arrays(lambda a: a.__setitem__("scaling/std/x", np.array(["a"] * 4))),
                           "holds <U1, not numbers"),
    "scaling shape": (_arrays(lambda a: a.update({"scaling/std/x": np.ones(3, np.float32), "scaling/mean/x":
                                                   np.zeros(3, np.float32)})), "have shape (3,); input 'x'"),
    "parameter shape": (_arrays(_reshape_a_parameter), "should have shape"),
}


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_checkpoints_are_refused_with_what_is_wrong(cli, iris_run, tmp_path, name):
    change, message = CRAFTED[name]
    path = _crafted(tmp_path, iris_run / "last.npz", change)
    result = cli("eval", IRIS, "--checkpoint", path)
    assert result.code == 1 and message in result.err and "internal error" not in result.err, result


# ---------------------------------------------------------------- 12: values from the command line


@pytest.mark.parametrize("value, message", [
    ("1e400", "-i x: 1e400 is not a finite number"),
    ("nan", "-i x: nan is not a finite number"),
    ("99999999999999999999", "-i x: 99999999999999999999 is beyond the range of a 64-bit integer"),
    ("1e39", "input 'x' holds 1e+39, beyond the range of float32"),
])
def test_run_refuses_values_out_of_range(cli, value, message):
    result = cli("run", MODELS / "polynomial.model", "-i", f"x={value}", "-i", "y=1")
    assert result.code == 1 and message in result.err, result


def test_integer_inputs_refuse_values_they_cannot_hold():
    program = gradc.compile(gradc.loads("model m\ninput k: i32[N]\noutput y = k + 1\n"))
    with pytest.raises(DataError, match=r"holds 3e\+09, beyond the range of int32"):
        program.run({"k": np.array([1, 3_000_000_000])})
    assert program.run({"k": np.array([1.0, 2.0])})["y"].tolist() == [2, 3]


# ---------------------------------------------------------------- 13, 14: duplicate columns, bce targets


def test_duplicate_csv_header_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,a,y\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(DataError, match=r"d\.csv:1: columns 1 and 3 are both named 'a'"):
        datasets.read_csv(path)


def test_bce_targets_outside_zero_one_are_refused():
    program = gradc.compile(MODELS / "logistic_regression.model")
    x = np.zeros((4, 30))
    with pytest.raises(DataError, match=r"bce: input 'y' holds 2; bce reads it as a probability"):
        program.run({"x": x, "y": np.array([0.0, 1.0, 2.0, 1.0])})
    with pytest.raises(DataError, match="holds -1"):
        program.fit({"x": np.zeros((20, 30)), "y": -np.ones(20)}, quiet=True, write_run=False)
    program.run({"x": x, "y": np.array([0.0, 1.0, 0.25, 1.0])})  # soft targets stay allowed


# ---------------------------------------------------------------- 15: too small for the splits


def test_a_dataset_too_small_for_its_splits_says_what_each_needs():
    arrays = {"x": np.zeros((1, 2)), "y": np.zeros(1)}
    with pytest.raises(DataError, match=r"1 example is too few for the splits: validation = 0.15 needs at least 4 "
                                        r"examples to hold out one; test = 0.15 needs at least 4 .*"
                                        r"at least 4 examples in all"):
        split(arrays, 0, 0.15, 0.15)
    with pytest.raises(DataError, match=r"validation = 0\.15 needs at least 4"):
        split({"x": np.zeros((3, 2))}, 0, 0.15, 0.0)
    sizes = split({"x": np.zeros((7, 2))}, 0, 0.15, 0.15)
    assert [len(p["x"]) for p in (sizes.train, sizes.validation, sizes.test)] == [5, 1, 1]


def test_training_on_one_row_is_an_error(cli, tmp_path):
    path = write_csv(tmp_path / "one.csv", ["x", "t"], [[0.5, 0.2]])
    result = cli("train", TINY, "--data", path, "--out", tmp_path / "run")
    assert result.code == 1 and "1 example is too few for the splits" in result.err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 16: binding by role


SWAPPED = (TINY.read_text().replace("input x: f32[N]\ninput t: f32[N]", "input t: f32[N]\ninput x: f32[N]"))


def test_binding_follows_the_role_not_the_declaration_order(tmp_path):
    assert SWAPPED.index("input t") < SWAPPED.index("input x")
    task = find_task(gradc.loads(SWAPPED).graph)
    assert (task.label, task.features) == ("t", "x")
    normal = gradc.compile(TINY).fit(out=tmp_path / "a", quiet=True, epochs=3)
    swapped = gradc.compile(gradc.loads(SWAPPED)).fit(out=tmp_path / "b", quiet=True, epochs=3)
    assert swapped.test.metrics["rmse"] == pytest.approx(normal.test.metrics["rmse"], rel=1e-5)


AMBIGUOUS = """model amb
input a: f32[N]
input b: f32[N]
param w: f32 = 1
loss L = mean((w * a - b)^2)
train {
  data = curve
  epochs = 1
}
"""


def test_ambiguous_binding_names_the_candidates_and_the_keys_settle_it(tmp_path):
    with pytest.raises(DataError, match=r"cannot tell which input is the label: 'a' or 'b' could be .*label = a"):
        gradc.compile(gradc.loads(AMBIGUOUS)).fit(quiet=True, write_run=False)
    for block in ("label = b", "features = a"):
        spec = gradc.loads(AMBIGUOUS.replace("epochs = 1", f"epochs = 1\n  {block}"))
        task = find_task(spec.graph, spec.train["label"], spec.train["features"])
        assert (task.label, task.features) == ("b", "a")
        gradc.compile(spec).fit(quiet=True, write_run=False)
    with pytest.raises(DataError, match="features = z: the model has no data input 'z'"):
        find_task(gradc.loads(AMBIGUOUS).graph, None, "z")


def test_label_names_the_input_and_a_csv_without_that_column_uses_its_last(tmp_path):
    rows = [[x, np.tanh(2 * x)] for x in np.linspace(-2, 2, 40)]
    path = write_csv(tmp_path / "d.csv", ["inp", "target"], rows)
    spec = gradc.loads(SWAPPED.replace("epochs = 100", "epochs = 1\n  label = t").replace("data = curve",
                                                                                       f'data = "{path}"'))
    result = gradc.compile(spec).fit(quiet=True, write_run=False)
    assert result.test.count == 6


# ---------------------------------------------------------------- 17: numeric class labels


def test_integer_label_columns_fit_classification_models(tmp_path, cli):
    table = datasets.iris(0)
    path = write_csv(tmp_path / "iris.csv", ["a", "b", "c", "d", "kind"], np.column_stack([table.features,
                                                                                           table.labels]))
    result = cli("train", IRIS, "--data", path, "--epochs", "2", "--out", tmp_path / "run")
    assert result.code == 0, result
    assert "(classification)" in result.out and "accuracy" in result.out.splitlines()[-1]
    cancer = datasets.breast_cancer(0)
    path = write_csv(tmp_path / "bc.csv", [f"f{i}" for i in range(30)] + ["y"],
                     np.column_stack([cancer.features, cancer.labels]))
    binary = cli("train", MODELS / "logistic_regression.model", "--data", path, "--epochs", "2", "--out",
                 tmp_path / "bc")
    assert binary.code == 0 and "(binary)" in binary.out, binary
    half = write_csv(tmp_path / "half.csv", ["a", "b", "c", "d", "kind"], [[1, 2, 3, 4, 0.5]] * 20)
    refused = cli("train", IRIS, "--data", half, "--out", tmp_path / "never")
    assert refused.code == 1 and "label column 'kind' holds 0.5" in refused.err


# ---------------------------------------------------------------- 18: accuracy without an output statement


@pytest.mark.parametrize("text, metric", [
    ("model m\ninput x: f32[N, 4]\ninput y: i64[N]\nlogits = x -> dense(3)\nloss L = cross_entropy(logits, y)\n"
     "train {\n  data = iris\n  epochs = 2\n}\n", "accuracy"),
    ("model m\ninput x: f32[N, 30]\ninput y: f32[N]\nparam w: f32[30] = zeros\np = sigmoid(x @ w)\n"
     "loss L = bce(p, y)\ntrain {\n  data = breast_cancer\n  epochs = 2\n}\n", "accuracy"),
])
def test_eval_reports_accuracy_without_an_output(cli, write_model, tmp_path, text, metric):
    model = write_model(text)
    assert cli("train", model, "--out", tmp_path / "run", "-q").code == 0
    result = cli("eval", model, "--checkpoint", tmp_path / "run" / "best.npz")
    assert result.code == 0 and metric in result.out, result


# ---------------------------------------------------------------- 19: predict writes classes, CSV, a preview


def test_predict_writes_the_class_name_and_csv(cli, iris_run, tmp_path, monkeypatch):
    table = datasets.iris(0)
    np.savez(tmp_path / "x.npz", x=table.features[:7])
    out = cli("predict", IRIS, "--checkpoint", iris_run / "best.npz", "--inputs", tmp_path / "x.npz",
              "-o", tmp_path / "p.npz")
    assert out.code == 0, out
    saved = np.load(tmp_path / "p.npz")
    assert saved["class"].tolist() == [table.class_names[i] for i in saved["probs"].argmax(1)]
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    shown = cli("predict", IRIS, "--checkpoint", iris_run / "best.npz", "--inputs", tmp_path / "x.npz",
                "-o", tmp_path / "p.csv")
    assert shown.code == 0 and "probs_setosa" in shown.out and "... 2 more rows" in shown.out, shown
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "probs_setosa,probs_versicolor,probs_virginica,class" and len(lines) == 8
    first = lines[1].split(",")
    assert np.allclose([float(v) for v in first[:3]], saved["probs"][0]) and first[3] == saved["class"][0]


def test_predict_writes_class_indices_without_names(iris_run):
    program = gradc.load_checkpoint(IRIS, iris_run / "best.npz")
    program.class_names = None
    from gradc.runtime.training.fit import predicted_class
    outputs = program.predict({"x": np.zeros((3, 4))})
    assert predicted_class(program, outputs).dtype.kind == "i"


def test_run_writes_csv(cli, tmp_path):
    result = cli("run", MODELS / "polynomial.model", "-i", "x=2", "-i", "y=1", "-o", tmp_path / "r.csv")
    assert result.code == 0 and (tmp_path / "r.csv").read_text() == "f\n15.0\n"
    refused = cli("run", MODELS / "mlp_digits.model", "--inputs", os.devnull, "-o", tmp_path / "r.csv")
    assert refused.code == 1


# ---------------------------------------------------------------- 20: run --params takes a checkpoint


def test_run_takes_a_checkpoint_as_params(cli, iris_run, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((2, 4)), y=np.zeros(2, np.int64))
    result = cli("run", IRIS, "--params", iris_run / "best.npz", "--inputs", tmp_path / "x.npz")
    assert result.code == 0 and "using the parameters of checkpoint" in result.err, result
    program = gradc.load_checkpoint(IRIS, iris_run / "best.npz")
    program.scaling = None
    expected = program.run({"x": np.ones((2, 4)), "y": np.zeros(2, np.int64)})["L"]
    assert f"{float(expected):.6g}" in result.out
    other = cli("run", MODELS / "mlp_digits.model", "--params", iris_run / "best.npz", "--inputs", tmp_path / "x.npz")
    assert other.code == 1 and "different model spec" in other.err


# ---------------------------------------------------------------- 21: data paths beside the model


def test_relative_data_paths_resolve_against_the_model_folder(cli, tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    write_csv(folder / "curve.csv", ["x", "t"], [[x, np.tanh(2 * x)] for x in np.linspace(-2, 2, 40)])
    model = folder / "m.model"
    model.write_text(TINY.read_text().replace("data = curve", 'data = "curve.csv"').replace("epochs = 100",
                                                                                          "epochs = 2"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli("train", model, "--out", "run", "-q").code == 0
    evaluated = cli("eval", model, "--checkpoint", "run/best.npz")
    assert evaluated.code == 0, evaluated
    missing = folder / "missing.model"
    missing.write_text(model.read_text().replace("curve.csv", "nope.csv"))
    result = cli("train", missing, "--out", "never")
    assert result.code == 1 and f"{missing}:17:10: error: data file not found" in result.err, result
    assert 'data = "nope.csv"' in result.err and "^" in result.err


# ---------------------------------------------------------------- 22: impossible settings


@pytest.mark.parametrize("args, message", [
    (("--lr", "-1"), "the learning rate (lr) must be > 0, got -1"),
    (("--lr", "nan"), "the learning rate (lr) must be > 0, got nan"),
    (("--schedule", "step(every=0)"), "argument 'every' of step must be a whole number >= 1, got 0"),
    (("--schedule", "step(every=2.5)"), "argument 'every' of step must be a whole number >= 1, got 2.5"),
    (("--optimizer", "adam(beta1=1.5)"), "argument 'beta1' of adam must be in [0, 1), got 1.5"),
    (("--optimizer", "momentum(mu=-0.1)"), "argument 'mu' of momentum must be in [0, 1)"),
    (("--schedule", "exponential(gamma=0)"), "argument 'gamma' of exponential must be > 0"),
    (("--seed", "-1"), "seed must be an integer >= 0, got -1"),
    (("--validation", "0.6", "--test", "0.5"), "validation 0.6 and test 0.5 leave no training data"),
])
def test_impossible_settings_are_refused_before_anything_is_written(cli, tmp_path, args, message):
    result = cli("train", IRIS, "--out", tmp_path / "run", *args)
    assert result.code == 1 and message in result.err, result
    assert not (tmp_path / "run").exists()


def test_the_python_api_checks_settings_too(tmp_path):
    program = gradc.compile(IRIS)
    with pytest.raises(GradcError, match="must be > 0"):
        program.fit(lr=0, out=tmp_path / "run", quiet=True)
    with pytest.raises(ModelError, match="argument 'every' of step must be a whole number"):
        gradc.loads("model m\ninput x: f32\noutput y = x\ntrain {\n  schedule = step(every=0)\n}\n")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 25: honest figures


def test_the_result_says_whose_parameters_it_measured(cli, tmp_path):
    result = cli("train", IRIS, "--epochs", "4", "--out", tmp_path / "run")
    last = result.out.splitlines()[-1]
    assert "parameters of the last epoch, 4, as in last.npz" in last and "lowest validation loss at epoch" in last
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["parameters"] == "last" and test["parameters_epoch"] == 4 and test["examples"] == 30
    evaluated = json.loads(cli("eval", IRIS, "--checkpoint", tmp_path / "run" / "last.npz", "--json").out)
    assert evaluated["loss"] == pytest.approx(test["loss"], rel=1e-5)
    early = cli("train", IRIS, "--epochs", "4", "--early-stopping", "2", "--out", tmp_path / "early")
    line = early.out.splitlines()[-1]
    assert "the lowest validation loss, as in best.npz" in line
    test = json.loads((tmp_path / "early" / "test.json").read_text())
    assert test["parameters"] == "best"
    evaluated = json.loads(cli("eval", IRIS, "--checkpoint", tmp_path / "early" / "best.npz", "--json").out)
    assert evaluated["loss"] == pytest.approx(test["loss"], rel=1e-5)


def test_curves_mark_the_best_epoch(monkeypatch):
    from gradc.runtime.training import runs
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": abs(e - 2) + 0.1} for e in (1, 2, 3)]
    marked = []
    import matplotlib.axes
    original = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, x, *a, **k: marked.append((x, k.get("label"))) or original(self, x, *a, **k))
    assert runs.plot_curves(history, "m", best_epoch=2).startswith(b"\x89PNG")
    assert marked and marked[0] == (2, "best epoch 2 (lowest validation loss)")


def test_checkpoints_keep_class_names(iris_run):
    assert checkpoints.Checkpoint.load(iris_run / "best.npz").meta["classes"] == list(datasets.iris(0).class_names)
