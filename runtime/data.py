"""From a dataset to the arrays a program is fed: which model input is which column, the task and its
metrics, a fixed train/validation/test split, standardization and batches.

Binding. A model's *label input* is the input that a loss reads as its target (the second operand of
``cross_entropy``, ``bce``, ``mse``...); with a loss written as an expression, the last declared input. The
*feature input* is the other one. A tabular dataset (built in, or .csv) needs a model with exactly these two
data inputs; an .npz file names its arrays after the model's inputs and may feed any number of them.

Task. Found from the graph: an integer label input read by a class loss (cross_entropy, hinge) is
*classification* (accuracy is the arg-max of the output shaped [N, classes]); a label read by ``bce`` is
*binary* (the output shaped like the label is a probability, thresholded at 0.5; at 0 for
``bce_with_logits``); any other is *regression* (MAE and RMSE of the output shaped like the label).

Split and scaling. The rows are permuted once from the seed and cut into test, validation and training
parts (fractions from the train block). Float features are standardized with the mean and standard
deviation of the training part only; the statistics travel with checkpoints so predictions apply them too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.types import TensorType
from gradc.dsl.diagnostics import DataError

from .datasets import Dataset, NamedArrays, Table

CLASS_LOSSES = ("cross_entropy", "hinge")
BINARY_LOSSES = {"bce": 0.5, "bce_with_logits": 0.0}
LOSS_OPERANDS = ("mse", "mae", "huber", "bce", "bce_with_logits", "cross_entropy", "hinge", "kl_div")

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Task:
    """What the model predicts and how it is scored."""

    kind: str  # classification, binary or regression
    label: str | None  # the label input
    features: str | None  # the feature input (for tabular data and scaling)
    prediction: str | None  # the output that metrics read
    threshold: float = 0.5

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.prediction is None:
            return ()
        return ("accuracy",) if self.kind in ("classification", "binary") else ("mae", "rmse")


def data_inputs(graph: Graph) -> dict[str, TensorType]:
    """The inputs that data feeds (dropout masks are fed by the training loop)."""
    return {n: graph.node(i).type for n, i in graph.inputs().items() if "dropout" not in graph.node(i).attrs}


def find_task(graph: Graph) -> Task:
    inputs = data_inputs(graph)
    ids = {graph.inputs()[n]: n for n in inputs}
    label, loss_op = None, None
    for node in graph.nodes():
        if node.op in LOSS_OPERANDS and len(node.inputs) > 1 and node.inputs[1] in ids:
            label, loss_op = ids[node.inputs[1]], node.op
            break
    if label is None and len(inputs) >= 2:
        label = list(inputs)[-1]
    if label is None:
        return Task("regression", None, next(iter(inputs), None), None)
    features = next((n for n in inputs if n != label), None)
    label_type = inputs[label]
    if loss_op in CLASS_LOSSES or (loss_op is None and not label_type.is_float):
        kind = "classification"
        want = lambda t: t.rank == label_type.rank + 1 and t.shape[:-1] == label_type.shape
    else:
        kind = "binary" if loss_op in BINARY_LOSSES else "regression"
        want = lambda t: t.shape == label_type.shape
    prediction = next((n for n, i in graph.outputs.items() if want(graph.node(i).type)), None)
    return Task(kind, label, features, prediction, BINARY_LOSSES.get(loss_op, 0.5))


def bind(dataset: Dataset, graph: Graph, task: Task) -> Arrays:
    """The dataset's arrays under the names of the model's inputs, with shapes and dtypes checked."""
    inputs = data_inputs(graph)
    if isinstance(dataset, NamedArrays):
        arrays = dict(dataset.arrays)
        missing = [n for n in inputs if n not in arrays]
        if missing:
            raise DataError(f"{dataset.name}: no array named {', '.join(repr(m) for m in missing)} "
                            f"(the file holds {', '.join(arrays) or 'nothing'}; the model's inputs are "
                            f"{', '.join(f'{n}: {t}' for n, t in inputs.items())})")
        extra = [n for n in arrays if n not in inputs]
        if extra:
            raise DataError(f"{dataset.name}: array {', '.join(repr(e) for e in extra)} is not an input of the "
                            f"model (inputs: {', '.join(inputs)})")
    else:
        if len(inputs) != 2 or task.features is None:
            raise DataError(f"dataset {dataset.name} has features and a label; the model's inputs are "
                            f"{', '.join(inputs)} (a tabular dataset needs one feature input and one label "
                            f"input; give an .npz file with one array per input instead)")
        arrays = {task.features: _fit_features(dataset, inputs[task.features], task.features),
                  task.label: _fit_labels(dataset, inputs[task.label], task, graph)}
    return {name: _check_column(dataset.name, name, arrays[name], inputs[name]) for name in inputs}


def _fit_features(table: Table, want: TensorType, name: str) -> np.ndarray:
    x = table.features
    if want.rank == 1 and x.shape[1] == 1:
        return x[:, 0]
    if want.rank != 2 or want.shape[1] != x.shape[1]:
        raise DataError(f"dataset {table.name} has {x.shape[1]} features per example; input '{name}' is {want} "
                        f"(declare it as {want.dtype}[{want.shape[0]}, {x.shape[1]}])")
    return x


def _fit_labels(table: Table, want: TensorType, task: Task, graph: Graph) -> np.ndarray:
    if table.class_names is None and task.kind != "regression":
        raise DataError(f"dataset {table.name} is a regression dataset, but the model treats "
                        f"'{task.label}' as class labels")
    if table.class_names is not None and task.kind == "regression":
        raise DataError(f"dataset {table.name} holds class labels, but the model's loss on '{task.label}' is a "
                        "regression loss")
    classes = len(table.class_names or ())
    if task.kind == "binary" and classes != 2:
        raise DataError(f"dataset {table.name} has {classes} classes; the binary loss on '{task.label}' needs 2")
    if task.kind == "classification" and task.prediction is not None:
        width = graph.node(graph.outputs[task.prediction]).type.shape[-1]
        if width != classes:
            raise DataError(f"dataset {table.name} has {classes} classes ({', '.join(table.class_names)}); "
                            f"output '{task.prediction}' scores {width}")
    return table.labels


def _check_column(source: str, name: str, array: np.ndarray, want: TensorType) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: '{name}' must be numeric, got dtype {array.dtype}")
    fixed = zip(want.shape, array.shape, strict=False)
    if array.ndim != want.rank or any(isinstance(d, int) and d != s for d, s in fixed):
        raise DataError(f"{source}: '{name}' has shape {array.shape}; input '{name}' is {want}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise DataError(f"{source}: '{name}' holds NaN or infinite values (first at index {bad})")
    if not want.is_float and array.dtype.kind == "f" and not (array == np.round(array)).all():
        raise DataError(f"{source}: '{name}' is {want} and needs whole numbers")
    return array.astype(want.numpy_dtype)


# ---------------------------------------------------------------- split and scaling


@dataclass
class Splits:
    train: Arrays
    validation: Arrays
    test: Arrays


def split(arrays: Arrays, seed: int, validation: float, test: float) -> Splits:
    """A fixed permutation from ``seed``; the test part first, then validation, the rest for training."""
    n = len(next(iter(arrays.values())))
    order = np.random.default_rng([seed, 7]).permutation(n)
    n_test, n_val = round(n * test), round(n * validation)
    if n - n_test - n_val < 1:
        raise DataError(f"{n} examples leave nothing to train on after the validation and test splits")
    parts = np.split(order, [n_test, n_test + n_val])
    take = lambda idx: {k: v[np.sort(idx)] for k, v in arrays.items()}
    return Splits(take(parts[2]), take(parts[1]), take(parts[0]))


@dataclass(frozen=True)
class Scaling:
    """Standardization of the float feature inputs: (x - mean) / std, from the training split."""

    stats: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def fit(cls, train: Arrays, names: list[str]) -> Scaling:
        stats = {}
        for name in names:
            x = train[name]
            if x.dtype.kind != "f" or x.ndim == 0:
                continue
            mean = x.mean(axis=0)
            std = x.std(axis=0)
            stats[name] = (mean.astype(x.dtype), np.where(std > 0, std, 1.0).astype(x.dtype))
        return cls(stats)

    def apply(self, arrays: Mapping[str, np.ndarray]) -> Arrays:
        out = dict(arrays)
        for name, (mean, std) in self.stats.items():
            if name in out:
                out[name] = ((out[name] - mean) / std).astype(out[name].dtype)
        return out

    def to_arrays(self) -> Arrays:
        return {f"scaling/{kind}/{name}": value for name, (mean, std) in self.stats.items()
                for kind, value in (("mean", mean), ("std", std))}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Scaling:
        names = [k.removeprefix("scaling/mean/") for k in arrays if k.startswith("scaling/mean/")]
        return cls({n: (arrays[f"scaling/mean/{n}"], arrays[f"scaling/std/{n}"]) for n in names})


def feature_names(task: Task, inputs: Mapping[str, TensorType]) -> list[str]:
    """The inputs standardized: every float data input but the label."""
    return [n for n, t in inputs.items() if n != task.label and t.is_float]


def batches(arrays: Arrays, size: int, rng: np.random.Generator | None) -> Iterator[Arrays]:
    """Mini-batches in a fresh order (``rng``) or in order (``None``); the last one may be smaller."""
    n = len(next(iter(arrays.values())))
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, size):
        idx = order[start:start + size]
        yield {k: v[idx] for k, v in arrays.items()}


def count(arrays: Arrays) -> int:
    return len(next(iter(arrays.values()))) if arrays else 0
