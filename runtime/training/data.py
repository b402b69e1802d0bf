"""From a dataset to the arrays a program is fed: which model input is which column, the task and its
metrics, a fixed train/validation/test split, standardization and batches.

Binding, by role. A model's *label input* is the input that a loss reads as its target (the second operand of
``cross_entropy``, ``bce``, ``mse``...); with a loss written as an expression, the input that the losses read
and no output does. The *feature input* is the other one. The train block may name either (``label = y``,
``features = x``); where the roles leave the label open, binding stops with an error naming the candidates.
A tabular dataset (built in, or .csv) needs a model with exactly these two data inputs; an .npz file names
its arrays after the model's inputs and may feed any number of them.

Task. Found from the graph: an integer label input read by a class loss (cross_entropy, hinge) is
*classification* (accuracy is the arg-max of the output shaped [N, classes]; with a label per step, [N, T],
accuracy counts tokens and ``sequence_accuracy`` whole sequences); a label read by ``bce`` is
*binary* (the output shaped like the label is a probability, thresholded at 0.5; at 0 for
``bce_with_logits``); any other is *regression* (MAE and RMSE of the output shaped like the label). A model
with no such output is scored on its loss's prediction operand, which :func:`expose_prediction` makes an
output.

Split and scaling. The rows are permuted once from the seed and cut into test, validation and training
parts (fractions from the train block). Float features are standardized with the mean and standard
deviation of the training part only; the statistics travel with checkpoints so predictions apply them too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.types import TensorType
from gradc.dsl.diagnostics import DataError, did_you_mean

from .datasets import Dataset, NamedArrays, Table

CLASS_LOSSES = ("cross_entropy", "hinge")
BINARY_LOSSES = {"bce": 0.5, "bce_with_logits": 0.0}
LOSS_OPERANDS = ("mse", "mae", "huber", "bce", "bce_with_logits", "cross_entropy", "hinge", "kl_div")

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Task:
    """What the model predicts and how it is scored."""

    kind: str  # classification, binary, regression or reconstruction (the input is its own target)
    label: str | None  # the label input
    features: str | None  # the feature input (for tabular data and scaling)
    prediction: str | None  # the output that metrics read
    threshold: float = 0.5
    sequence: bool = False  # class labels per step ([N, T]): accuracy per token, and per whole sequence

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.prediction is None:
            return ()
        if self.kind in ("classification", "binary"):
            return ("accuracy", "sequence_accuracy") if self.sequence else ("accuracy",)
        return ("mae", "rmse")


def data_inputs(graph: Graph) -> dict[str, TensorType]:
    """The inputs that data feeds (dropout masks are fed by the training loop)."""
    return {n: graph.node(i).type for n, i in graph.inputs().items() if "dropout" not in graph.node(i).attrs}


def find_task(graph: Graph, label: str | None = None, features: str | None = None) -> Task:
    """The task of a model: which input is the label and which the features (by role, or as the train block's
    ``label`` and ``features`` name them), what kind of prediction it makes and which output is scored."""
    inputs = data_inputs(graph)
    if features is not None and features not in inputs:
        raise DataError(f"features = {features}: the model has no data input '{features}'"
                        f"{did_you_mean(features, inputs)} (its inputs: {', '.join(inputs) or 'none'})")
    targets = _loss_targets(graph, inputs)
    if label in inputs:
        candidates = [label]
    elif targets:
        candidates = list(dict.fromkeys(targets))
    else:
        candidates = _read_only_by_losses(graph, inputs)
    if features is not None:
        candidates = [c for c in candidates if c != features]
        if len(candidates) != 1 and len(inputs) == 2:  # the other input
            candidates = [n for n in inputs if n != features]
    if len(candidates) > 1:
        raise DataError(f"cannot tell which input is the label: {_either(candidates)} could be "
                        f"({_why(targets)}); name it in the train block, e.g. label = {candidates[0]}")
    if not candidates:
        return Task("regression", None, features or next(iter(inputs), None), None)
    label = candidates[0]
    if features == label:
        raise DataError(f"features = {features} names the label input (the target of the loss)")
    others = [n for n in inputs if n != label]
    if not others and label in targets:  # the loss compares the model's output with its own input: an autoencoder
        prediction = next((n for n, i in graph.outputs.items() if graph.node(i).type.shape == inputs[label].shape),
                          None)
        return Task("reconstruction", label, label, prediction)
    features = features or (others[0] if len(others) == 1 else None)
    loss_op = targets.get(label)
    label_type = inputs[label]
    if loss_op in CLASS_LOSSES or (loss_op is None and not label_type.is_float):
        kind = "classification"
    else:
        kind = "binary" if loss_op in BINARY_LOSSES else "regression"
    prediction = next((n for n, i in graph.outputs.items() if _scores(kind, label_type, graph.node(i).type)), None)
    sequence = kind == "classification" and label_type.rank >= 2
    return Task(kind, label, features, prediction, BINARY_LOSSES.get(loss_op, 0.5), sequence)


def _scores(kind: str, label: TensorType, output: TensorType) -> bool:
    """Whether an output of this type is what the metrics of a ``kind`` task on ``label`` read."""
    if kind == "classification":
        return output.rank == label.rank + 1 and output.shape[:-1] == label.shape
    return output.shape == label.shape


def _loss_targets(graph: Graph, inputs: Mapping[str, TensorType]) -> dict[str, str]:
    """Data inputs that a loss op reads as its target, with the op, in graph order."""
    ids = {graph.inputs()[n]: n for n in inputs}
    targets: dict[str, str] = {}
    for node in graph.nodes():
        if node.op in LOSS_OPERANDS and len(node.inputs) > 1 and node.inputs[1] in ids:
            targets.setdefault(ids[node.inputs[1]], node.op)
    return targets


def _read_only_by_losses(graph: Graph, inputs: Mapping[str, TensorType]) -> list[str]:
    """For losses written as expressions: the data inputs that the losses read and no output does (with
    fewer than two data inputs there is no label)."""
    if len(inputs) < 2 or not graph.losses:
        return []
    ids = graph.inputs()

    def ancestors(nodes) -> set[int]:
        return set().union(*(nx.ancestors(graph.dag, n) | {n} for n in nodes)) if nodes else set()

    read_by_losses = ancestors(graph.losses.values())
    read_by_outputs = ancestors(graph.outputs.values())
    loss_only = [n for n in inputs if ids[n] in read_by_losses and ids[n] not in read_by_outputs]
    return loss_only or ([n for n in inputs if ids[n] in read_by_losses] if graph.outputs else [])


def _either(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _why(targets: Mapping[str, str]) -> str:
    if len(targets) > 1:
        return "losses read " + ", ".join(f"'{n}' in {op}" for n, op in targets.items()) + " as targets"
    return "the loss is an expression, which does not say which operand is the target"


def expose_prediction(graph: Graph) -> Graph:
    """``graph`` with its loss's prediction operand (``logits`` in ``cross_entropy(logits, y)``) as an output
    when none of its outputs is the one the metrics read (a model with only a loss statement), so that
    evaluation reports accuracy and prediction has something to write. Otherwise ``graph`` itself."""
    try:
        task = find_task(graph)
    except DataError:
        return graph
    if task.label is None or task.prediction is not None:
        return graph
    label_id = graph.inputs()[task.label]
    loss = next((node for node in graph.nodes() if node.op in LOSS_OPERANDS and len(node.inputs) > 1
                 and node.inputs[1] == label_id), None)
    if loss is None:
        return graph
    operand = graph.node(loss.inputs[0])
    taken = {*graph.outputs, *graph.losses, *graph.inputs(), *graph.params()}
    name = operand.name if operand.name and operand.name not in taken else "prediction"
    while name in taken:
        name = "_" + name
    exposed = graph.copy()
    exposed.outputs[name] = operand.id
    return exposed


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
        scalars = [n for n in inputs if inputs[n].rank == 0]
        if scalars:
            several = len(scalars) > 1
            raise DataError(f"{dataset.name}: input{'s' if several else ''} {', '.join(repr(n) for n in scalars)} "
                            f"of the model {'are scalars' if several else 'is a scalar'} "
                            f"({', '.join(f'{n}: {inputs[n]}' for n in scalars)}); a dataset holds many "
                            f"examples, so every input needs a batch axis (declare it as "
                            f"{inputs[scalars[0]].dtype}[N])")
    elif task.kind == "reconstruction":  # the features are the target
        arrays = {task.features: _fit_features(dataset, inputs[task.features], task.features)}
    else:
        if len(inputs) != 2 or task.features is None or task.label is None:
            raise DataError(f"dataset {dataset.name} has features and a label; the model's inputs are "
                            f"{', '.join(inputs) or 'none'} (a tabular dataset needs one feature input and one "
                            f"label input; name them in the train block with features = ... and label = ..., "
                            f"or give an .npz file with one array per input instead)")
        arrays = {task.features: _fit_features(dataset, inputs[task.features], task.features),
                  task.label: _fit_labels(dataset, inputs[task.label], task, graph)}
    return {name: _check_column(dataset.name, name, arrays[name], inputs[name]) for name in inputs}


def _fit_features(table: Table, want: TensorType, name: str) -> np.ndarray:
    x = table.features
    if want.rank == 1 and x.shape[1:] == (1,):
        return x[:, 0]
    if want.rank != 2 or x.ndim > 2:
        return as_examples(table.name, name, x, want)
    if want.shape[1] != x.shape[1]:
        raise DataError(f"dataset {table.name} has {x.shape[1]} features per example; input '{name}' is {want} "
                        f"(declare it as {want.dtype}[{want.shape[0]}, {x.shape[1]}])")
    return x


def _fit_labels(table: Table, want: TensorType, task: Task, graph: Graph) -> np.ndarray:
    if table.class_names is not None and task.kind == "regression":
        raise DataError(f"dataset {table.name} holds class labels, but the model's loss on '{task.label}' is a "
                        "regression loss")
    if task.kind == "regression":  # one target per example: [n], or [n, 1] for an input declared so
        return table.labels[:, None] if want.rank == 2 and want.shape[1] == 1 else table.labels
    labels = table.labels if table.class_names is not None else _class_indices(table, task)
    classes = len(table.class_names) if table.class_names is not None else int(labels.max(initial=-1)) + 1
    if task.kind == "binary" and (classes > 2 if table.class_names is None else classes != 2):
        raise DataError(f"dataset {table.name} has {classes} classes; the binary loss on '{task.label}' needs 2"
                        + (" (labels 0 and 1)" if table.class_names is None else ""))
    if task.kind == "classification" and task.prediction is not None:
        width = graph.node(graph.outputs[task.prediction]).type.shape[-1]
        if table.class_names is not None and width != classes:
            raise DataError(f"dataset {table.name} has {classes} classes ({', '.join(table.class_names)}); "
                            f"output '{task.prediction}' scores {width}")
        if isinstance(width, int) and classes > width:
            raise DataError(f"dataset {table.name}: label column '{table.label_name}' holds class {classes - 1}; "
                            f"output '{task.prediction}' scores {width} classes (0 to {width - 1})")
    return labels


def _class_indices(table: Table, task: Task) -> np.ndarray:
    """Numeric labels for a class loss: whole numbers from 0, the class indices."""
    labels = table.labels
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0))
    if bad.size:
        raise DataError(f"dataset {table.name}: label column '{table.label_name}' holds {labels[bad[0]]:g} "
                        f"(row {bad[0] + 1}); the {task.kind} loss on '{task.label}' needs class indices "
                        "(whole numbers 0, 1, ...) or class names")
    return labels.astype(np.int64)


def as_examples(source: str, name: str, array: np.ndarray, want: TensorType) -> np.ndarray:
    """Examples in the input's shape when the element counts match (row-major, as they are stored): digits'
    64 pixels become the image [1, 8, 8] that ``input x: f32[N, 1, 8, 8]`` asks for, and a sequence [T, F]
    becomes the T * F features of ``input x: f32[N, 100]``."""
    per_example = want.shape[1:]
    if array.ndim < 2 or want.rank < 2 or array.ndim == want.rank or any(
            not isinstance(d, int) for d in per_example):
        return array  # the same rank: the shapes are compared as they are
    size, have = int(np.prod(per_example)), int(np.prod(array.shape[1:]))
    if have != size:
        shape = "features" if array.ndim == 2 else f"elements ([{', '.join(map(str, array.shape[1:]))}])"
        raise DataError(f"{source} has {have} {shape} per example; input '{name}' is {want}, which holds {size}")
    return array.reshape((array.shape[0], *per_example))


def _check_column(source: str, name: str, array: np.ndarray, want: TensorType) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim >= 2 and want.rank >= 2:
        array = as_examples(source, name, array, want)
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
    if n - n_test - n_val < 1 or (test > 0 and n_test == 0) or (validation > 0 and n_val == 0):
        raise DataError(too_few_examples(n, validation, test))
    parts = np.split(order, [n_test, n_test + n_val])
    take = lambda idx: {k: v[np.sort(idx)] for k, v in arrays.items()}
    return Splits(take(parts[2]), take(parts[1]), take(parts[0]))


def too_few_examples(n: int, validation: float, test: float) -> str:
    """Why ``n`` examples cannot be split: how many each split needs."""
    needs = [f"{name} = {fraction:g} needs at least {_held_out_minimum(fraction)} examples to hold out one"
             for name, fraction in (("validation", validation), ("test", test)) if fraction > 0]
    total = max([_held_out_minimum(f) for f in (validation, test) if f > 0] + [1])
    while total - round(total * validation) - round(total * test) < 1:
        total += 1
    needs.append("training needs at least 1 left over")
    return (f"{n} example{' is' if n == 1 else 's are'} too few for the splits: {'; '.join(needs)}: at least {total} "
            f"examples in all (or set validation = 0 and test = 0 to train on every example)")


def _held_out_minimum(fraction: float) -> int:
    """The fewest examples of which ``round(n * fraction)`` is at least 1."""
    n = max(1, int(0.5 / fraction))
    while round(n * fraction) < 1:
        n += 1
    return n


@dataclass(frozen=True)
class Scaling:
    """Standardization of the float feature inputs: (x - mean) / std, from the training split."""

    stats: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def fit(cls, train: Arrays, names: list[str], declared: Mapping[str, TensorType] | None = None) -> Scaling:
        """Statistics of ``train``'s inputs ``names``; an axis that ``declared`` (the inputs' types) gives a
        symbolic length (a sequence's T) is pooled, so that the statistics hold at every length."""
        stats = {}
        for name in names:
            x = train[name]
            if x.dtype.kind != "f" or x.ndim == 0:
                continue
            shape = declared[name].shape if declared and name in declared else x.shape
            # an image [N, C, H, W] is standardized per channel, as image pipelines do, so that a pixel means
            # the same wherever it is; a sequence of symbolic length per feature over its steps; other inputs
            # per feature
            axes = (0, 2, 3) if x.ndim == 4 else (0, *(a for a in range(1, x.ndim) if isinstance(shape[a], str)))
            mean = x.mean(axis=axes, keepdims=True)[0].reshape(statistic_shape(shape))
            std = x.std(axis=axes, keepdims=True)[0].reshape(statistic_shape(shape))
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


def statistic_shape(shape: tuple) -> tuple:
    """The shape of an input's standardization statistics, from its declared shape: one per channel of an
    image [N, C, H, W] (as [C, 1, 1], to broadcast), else one per feature (the shape of an example, with 1 on
    an axis of symbolic length, to broadcast over its steps)."""
    return (shape[1], 1, 1) if len(shape) == 4 else tuple(1 if isinstance(d, str) else d for d in shape[1:])


def feature_names(task: Task, inputs: Mapping[str, TensorType]) -> list[str]:
    """The inputs standardized: every float data input but the label (an autoencoder's input, its own target,
    is standardized too: it learns to reproduce the standardized features)."""
    return [n for n, t in inputs.items() if (n != task.label or task.kind == "reconstruction") and t.is_float]


def batches(arrays: Arrays, size: int, rng: np.random.Generator | None) -> Iterator[Arrays]:
    """Mini-batches in a fresh order (``rng``) or in order (``None``); the last one may be smaller."""
    n = len(next(iter(arrays.values())))
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, size):
        idx = order[start:start + size]
        yield {k: v[idx] for k, v in arrays.items()}


def count(arrays: Arrays) -> int:
    return len(next(iter(arrays.values()))) if arrays else 0
