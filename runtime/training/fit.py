"""The training loop: data prepared once, then epochs of shuffled mini-batches through the compiled
training step, a validation pass per epoch, the learning-rate schedule, early stopping, the NaN guard,
checkpoints and the run folder; and evaluation and prediction on whole datasets.

Reproducibility: everything random is drawn from the seed and the epoch number (the split from the seed,
each epoch's shuffle and dropout masks from ``(seed, epoch)``), so a resumed run continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from gradc.compiler.binding import lengths_in
from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import DataError, GradcError, ModelError
from gradc.dsl.train_schema import CallValue, check_settings, default_settings, override

from ..distributed.exchange import Exchanger
from ..distributed.step import DataParallelStep
from ..distributed.world import World, current_world, share_cores
from ..execution.optimizer_state import OptimizerState
from ..execution.training_state import mask_stream
from .checkpoints import Checkpoint, spec_hash
from .data import (
    Arrays,
    Scaling,
    Splits,
    Task,
    batches,
    bind,
    count,
    data_inputs,
    feature_names,
    find_task,
    split,
    statistic_shape,
)
from .datasets import NamedArrays, load_dataset
from .metrics import confusion_matrix, predicted_classes, score
from .reporting import Reporter
from .runs import RunDirectory
from .schedules import Position, learning_rate

if TYPE_CHECKING:
    from ..execution.program import Program

EVAL_BATCH = 1024
# settings a resumed run must share with the checkpoint's run to continue it exactly
RESUME_KEYS = ("data", "label", "features", "optimizer", "schedule", "batch", "weight_decay", "clip_norm", "seed",
               "validation", "test")


class TrainingDiverged(GradcError):
    pass


@dataclass
class Evaluation:
    split: str
    count: int
    loss: float
    metrics: dict[str, float]
    confusion: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "examples": self.count, "loss": self.loss, **self.metrics}
        if self.confusion is not None:
            out["confusion_matrix"] = self.confusion.tolist()
            out["classes"] = list(self.class_names or ())
        return out


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    test: Evaluation | None
    run_dir: Path | None
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    task: Task
    splits: Splits
    scaling: Scaling
    class_names: tuple[str, ...] | None
    source: str


# ---------------------------------------------------------------- settings and data


def resolve_settings(program: Program, data: Any = None, **overrides: Any) -> dict[str, Any]:
    settings = dict(program.train_settings or default_settings())
    for key, value in overrides.items():
        settings = override(settings, key, value)
    if isinstance(data, str | Path):
        settings["data"] = str(data)
    return settings


def settings_json(settings: Mapping[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, CallValue):
            return {"name": value.name, "args": value.args}
        return value

    return {k: convert(v) for k, v in settings.items()}


def prepare(program: Program, data: Any, settings: Mapping[str, Any], scaling: Scaling | None = None) -> Prepared:
    """Load, bind, check, split and standardize the data (with ``scaling``, else statistics of the training
    split)."""
    task, dataset, source, arrays = load_data(program.source, data, settings)
    program.feed_spec.check(arrays, scan_values=True)  # label ranges and the rest, once for all the data
    splits = split(arrays, settings["seed"], settings["validation"], settings["test"])
    inputs = data_inputs(program.source)
    scaling = scaling or Scaling.fit(splits.train, feature_names(task, inputs), data_inputs(program.spec_graph))
    scaled = Splits(scaling.apply(splits.train), scaling.apply(splits.validation), scaling.apply(splits.test))
    return Prepared(task, scaled, scaling, getattr(dataset, "class_names", None), source)


def load_data(graph: Graph, data: Any, settings: Mapping[str, Any]) -> tuple[Task, Any, str, Arrays]:
    """The task, the dataset, where it came from and its arrays bound to ``graph``'s inputs: ``data`` (a
    built-in dataset name, a .npz/.csv path, a dict of arrays or a dataset), else the settings' data."""
    label = settings.get("label")
    task = find_task(graph, label, settings.get("features"))
    if data is None or isinstance(data, str | Path):
        source = str(data) if data is not None else settings.get("data")
        if source is None:
            raise DataError(f"no data for model '{graph.model_name}': give --data (a built-in dataset, .npz or "
                            ".csv) or 'data = ...' in the train block")
        features = data_inputs(graph).get(task.features) if task.features else None
        dataset = _load_located(source, settings["seed"], label, label in data_inputs(graph),
                                features.shape if features is not None else None)
    elif isinstance(data, Mapping):
        source, dataset = "arrays", NamedArrays("arrays", {k: np.asarray(v) for k, v in data.items()})
    else:
        source, dataset = getattr(data, "name", "data"), data
    return task, dataset, source, bind(dataset, graph, task)


def data_lengths(graph: Graph, data: Any, settings: Mapping[str, Any]) -> dict[str, int]:
    """The sizes of ``graph``'s symbolic lengths (a sequence's T) in its data (as :func:`load_data` finds it)."""
    _, _, source, arrays = load_data(graph, data, settings)
    return lengths_in(graph, arrays, source)


def _load_located(source: str, seed: int, label: str | None, label_is_input: bool,
                  feature_shape: tuple | None = None):
    """Load a dataset; an error about a path given in the model's train block points at that line."""
    try:
        return load_dataset(source, seed, label, label_optional=label_is_input, feature_shape=feature_shape)
    except DataError as error:
        location = getattr(source, "location", None)
        if location is None:
            raise
        raise ModelError(error.message, location, error.notes) from None


# ---------------------------------------------------------------- evaluation


def evaluate_arrays(program: Program, arrays: Arrays, task: Task, split_name: str,
                    class_names: tuple[str, ...] | None = None, confusion: bool = False) -> Evaluation:
    """Mean loss and metrics over scaled arrays, in batches through the evaluation graph."""
    n = count(arrays)
    if n == 0:
        return Evaluation(split_name, 0, float("nan"), {})
    loss_total, predictions = 0.0, []
    for batch in batches(arrays, EVAL_BATCH, None):
        results = program.forward_feeds(program.feed_spec.check(batch, scan_values=False))
        loss_total += objective_value(program, results) * count(batch)
        if task.prediction is not None:
            predictions.append(results[task.prediction])
    metrics, matrix = {}, None
    if predictions:
        prediction = np.concatenate(predictions)
        metrics = score(task, prediction, arrays[task.label])
        if confusion and task.kind in ("classification", "binary"):
            classes = len(class_names) if class_names else int(prediction.shape[-1] if task.kind ==
                                                                "classification" else 2)
            matrix = confusion_matrix(task, prediction, arrays[task.label], classes)
    return Evaluation(split_name, n, loss_total / n, metrics, matrix, class_names)


def objective_value(program: Program, results: Mapping[str, np.ndarray]) -> float:
    g = program.graph
    if g.losses:
        return float(sum(float(results[name]) for name in g.losses))
    scalar = [name for name, node in g.outputs.items() if node == g.objective]
    return float(results[scalar[0]]) if scalar else float("nan")


def evaluate_data(program: Program, data: Any = None, split_name: str = "test", **overrides: Any) -> Evaluation:
    """Evaluate on a split of a dataset, standardized with the program's scaling (from training or its
    checkpoint)."""
    settings = resolve_settings(program, data, **overrides)
    prepared = prepare(program, data, settings, program.scaling)  # the statistics the parameters were trained with
    choices = {"test": prepared.splits.test, "validation": prepared.splits.validation, "train": prepared.splits.train}
    if split_name == "all":
        arrays = {k: np.concatenate([choices[s][k] for s in choices]) for k in prepared.splits.train}
    elif split_name in choices:
        arrays = choices[split_name]
    else:
        raise GradcError(f"unknown split '{split_name}' (splits: test, validation, train, all)")
    if count(arrays) == 0:
        raise DataError(f"the {split_name} split of {prepared.source} is empty")
    return evaluate_arrays(program, arrays, prepared.task, split_name, prepared.class_names, confusion=True)


def predict(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs for raw inputs. Inputs that no output depends on (labels) may be left out."""
    g = program.graph
    needed = set()
    for node in g.outputs.values():
        needed |= nx.ancestors(g.dag, node) | {node}
    declared = program.feed_spec.declared
    feeds = {k: np.asarray(v) for k, v in inputs.items()}
    missing = [n for n, i in g.inputs().items() if n not in feeds and i in needed]
    if missing:
        raise DataError(f"predict needs input {', '.join(repr(m) for m in missing)} "
                        f"(the outputs depend on {', '.join(n for n, i in g.inputs().items() if i in needed)})")
    batch_sizes = {len(v) for n, v in feeds.items() if n in declared and np.ndim(v) and declared[n].rank
                   and isinstance(declared[n].shape[0], str)}
    rows = batch_sizes.pop() if len(batch_sizes) == 1 else 1
    for name, t in declared.items():
        if name not in feeds:
            shape = tuple(rows if isinstance(d, str) else d for d in t.shape)
            feeds[name] = np.zeros(shape, t.numpy_dtype)
    feeds = program.feed_spec.check(feeds)  # shapes and values checked on the raw inputs, before scaling broadcasts
    if program.scaling is not None:
        feeds = program.scaling.apply(feeds)
    results = program.forward_feeds(feeds)
    outputs = {name: results[name] for name in g.outputs}
    return _in_data_units(program, outputs)


def _in_data_units(program: Program, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An autoencoder's reconstruction in the units of its input: the model learned to reproduce the
    standardized input, so the standardization is undone on the way out."""
    settings = program.train_settings or {}
    try:
        task = find_task(program.source, settings.get("label"), settings.get("features"))
    except DataError:
        return outputs
    if (task.kind == "reconstruction" and task.prediction in outputs and program.scaling is not None
            and task.features in program.scaling.stats):
        mean, std = program.scaling.stats[task.features]
        outputs = {**outputs, task.prediction: (outputs[task.prediction] * std + mean).astype(
            outputs[task.prediction].dtype)}
    return outputs


def predicted_class(program: Program, outputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The class each example is predicted to be, from the output the metrics read: the class name when the
    training data had names, else the index (0 or 1 for a binary model). None for a model that does not
    classify."""
    settings = program.train_settings or {}
    try:
        task = find_task(program.source, settings.get("label"), settings.get("features"))
    except DataError:
        return None
    if task.kind not in ("classification", "binary") or task.prediction not in outputs:
        return None
    classes = predicted_classes(task, np.asarray(outputs[task.prediction]))
    names = program.class_names
    if names and classes.size and 0 <= classes.min() and classes.max() < len(names):
        return np.asarray(names)[classes]
    return classes


# ---------------------------------------------------------------- checkpoints


def make_checkpoint(program: Program, state: dict[str, Any]) -> Checkpoint:
    meta = {"model": program.name, "spec_hash": spec_hash(program.spec_graph), "dims": dict(program.dims),
            "optimizer": program.optimizer.definition.name, "hyperparameters": program.optimizer.hyper,
            "step": program.optimizer.t, "classes": list(program.class_names) if program.class_names else None,
            **state}
    scaling = program.scaling.to_arrays() if program.scaling is not None else {}
    params = program.host_params()  # one copy back from a device target: parameters and optimizer state
    return Checkpoint(dict(params), meta, dict(program.optimizer.state), scaling)


def save_program(program: Program, path: str | Path) -> None:
    make_checkpoint(program, {"epoch": program.epoch, "settings": settings_json(program.train_settings or {})}
                    ).save(path)


def restore(program: Program, checkpoint: Checkpoint, path: str | Path) -> None:
    """Parameters, optimizer state and scaling from a checkpoint whose spec was checked against the program."""
    try:
        program.set_params(checkpoint.params)
    except DataError as error:
        raise DataError(f"checkpoint {path}: {error.message.replace('parameters file ', '')}") from None
    _check_scaling(program, checkpoint, path)
    meta = checkpoint.meta
    program.optimizer = OptimizerState.create(meta["optimizer"], program.host_params(), **meta["hyperparameters"])
    program.optimizer.t = int(meta.get("step", 0))
    for name, arrays in checkpoint.optimizer_state.items():
        if name in program.optimizer.state:
            program.optimizer.state[name] = [a.astype(p.dtype) for a, p in
                                              zip(arrays, program.optimizer.state[name], strict=True)]
    program.scaling = Scaling.from_arrays(checkpoint.scaling) if checkpoint.scaling else None
    program.epoch = int(meta.get("epoch", 0))
    program.class_names = tuple(meta["classes"]) if meta.get("classes") else None
    program.train_settings = trained_settings(checkpoint) or program.train_settings


def _check_scaling(program: Program, checkpoint: Checkpoint, path: str | Path) -> None:
    """The checkpoint's feature statistics must belong to float inputs of the model, one per feature."""
    inputs = data_inputs(program.spec_graph)  # as declared: a symbolic length's statistics are pooled over it
    for name, (mean, _) in Scaling.from_arrays(checkpoint.scaling).stats.items():
        want = inputs.get(name)
        if want is None or not want.is_float:
            raise DataError(f"checkpoint {path}: feature statistics for '{name}', which is not a float input of "
                            f"the model (its inputs: {', '.join(inputs)})")
        expected = statistic_shape(want.shape)
        if mean.shape != expected:
            what = "channel" if want.rank == 4 else "feature"
            raise DataError(f"checkpoint {path}: feature statistics for '{name}' have shape {mean.shape}; input "
                            f"'{name}' is {want} (one statistic per {what}: shape {expected})")


def trained_settings(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """The settings a checkpoint's parameters were trained with (its data, split and seed), if it says."""
    saved = checkpoint.meta.get("settings")
    return {**default_settings(), **settings_from_json(saved)} if saved else None


def settings_from_json(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`settings_json`."""
    return {k: CallValue(v["name"], v["args"]) if isinstance(v, dict) else v for k, v in saved.items()}


def _resume_mismatch(checkpoint: Checkpoint, settings: Mapping[str, Any]) -> list[str]:
    saved = checkpoint.meta.get("settings", {})
    mine = settings_json(settings)
    defaults = settings_json(default_settings())  # a setting newer than the checkpoint: its default then
    return [f"{key}: checkpoint {_text(saved.get(key, defaults[key]))}, now {_text(mine.get(key))}"
            for key in RESUME_KEYS if saved.get(key, defaults[key]) != mine.get(key)]


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        return str(CallValue(value["name"], value["args"]))
    return value


# ---------------------------------------------------------------- the loop


def _picture_reconstructions(program: Program, arrays: Arrays, task: Task, run_dir: RunDirectory) -> None:
    """An autoencoder's run keeps ``reconstructions.png``: test examples beside their reconstructions, when each
    example is a square image (the digits' 64 pixels are 8 x 8)."""
    if task.kind != "reconstruction" or task.prediction is None or not count(arrays):
        return
    originals = arrays[task.features][:10]
    side = math.isqrt(int(np.prod(originals.shape[1:])))
    if side * side != int(np.prod(originals.shape[1:])):
        return
    rebuilt = program.run({task.features: originals})[task.prediction]
    if program.scaling is not None and task.features in program.scaling.stats:  # back to the data's own units
        mean, std = program.scaling.stats[task.features]
        originals, rebuilt = originals * std + mean, rebuilt * std + mean
    run_dir.write_reconstructions(originals.reshape(-1, side, side), rebuilt.reshape(-1, side, side),
                                  program.name)


def fit(program: Program, data: Any = None, *, out: str | Path | None = None, runs_root: str | Path = "runs",
        resume: str | Path | None = None, quiet: bool = False, log_json: bool = False,
        reporter: Reporter | None = None, write_run: bool = True, world: World | None = None,
        **overrides: Any) -> FitResult:
    """Train ``program`` in place; see :meth:`gradc.runtime.execution.program.Program.fit`. In a world of
    several ranks (started by an MPI launcher; ``world``), data-parallel: each rank takes its rows of every
    global batch and the gradients are summed over the ranks (:mod:`gradc.runtime.distributed.step`); rank 0
    alone reports and writes the run folder."""
    started = time.perf_counter()
    world = world if world is not None else current_world()
    settings = resolve_settings(program, data, **overrides)
    check_settings(settings)  # every setting possible, before anything is read or written
    if world.distributed and program.target != "cpu":
        raise GradcError(f"training on several ranks runs on the cpu target (not '{program.target}')")
    share_cores(world)
    if not world.is_root:
        reporter, write_run = Reporter(quiet=True, out=io.StringIO(), progress=False), False
    reporter = reporter or Reporter(quiet=quiet, json_lines=log_json)
    if settings["early_stopping"] and settings["validation"] == 0:
        raise GradcError("early_stopping needs a validation split (validation > 0)")
    prepared = prepare(program, data, settings)
    splits, task = prepared.splits, prepared.task
    program.scaling = prepared.scaling
    program.class_names = prepared.class_names
    program.train_settings = settings
    optimizer: CallValue = settings["optimizer"]
    schedule: CallValue = settings["schedule"]
    program.set_weight_decay(settings["weight_decay"])
    program.set_clip_norm(0.0 if world.distributed else settings["clip_norm"])  # several ranks: after the sum
    program.set_optimizer(optimizer.name, **optimizer.args)

    history: list[dict[str, Any]] = []
    best = {"loss": float("inf"), "epoch": 0, "bad_epochs": 0, "params": None}
    start_epoch = 1
    if resume is not None:
        checkpoint = Checkpoint.load(resume)
        checkpoint.check_spec(program.spec_graph, resume)  # the model first: its settings only matter if it is the same
        differences = _resume_mismatch(checkpoint, settings)
        if differences:
            raise GradcError(f"cannot resume from {resume}: the run's settings differ ({'; '.join(differences)})")
        restore(program, checkpoint, resume)
        program.scaling = prepared.scaling
        history = list(checkpoint.meta.get("history", []))
        early = checkpoint.meta.get("early_stopping", {})
        best.update(loss=early.get("best_loss", float("inf")), epoch=early.get("best_epoch", 0),
                    bad_epochs=early.get("bad_epochs", 0))
        best["params"] = checkpoint.best_params or None
        start_epoch = int(checkpoint.meta["epoch"]) + 1
    exchanger = Exchanger(world)
    parallel = DataParallelStep(program, exchanger, settings["clip_norm"]) if world.distributed else None
    exchanger.broadcast(program.params, "the parameters' broadcast from rank 0")

    run_dir = RunDirectory.create(program.name, out, runs_root) if write_run else None
    config = {"model": program.name, "target": program.target, "settings": settings_json(settings),
              "task": task.kind, "splits": {s: count(getattr(splits, s)) for s in ("train", "validation", "test")},
              "data": prepared.source, "resumed_from": str(resume) if resume else None, "world_size": world.size}
    if run_dir is not None:
        run_dir.write_config(config)
    reporter.event("start", f"training {program.name} on {prepared.source} ({task.kind}): "
                   f"{count(splits.train)} train / {count(splits.validation)} validation / {count(splits.test)} "
                   f"test examples; {optimizer}, {schedule}, batch {settings['batch']}, epochs {settings['epochs']}"
                   + (f", resuming at epoch {start_epoch}" if resume else "")
                   + (f"; {world.size} ranks, {_per_rank(settings['batch'], world.size)} rows each"
                      if world.distributed else "")
                   + (f"; run folder {run_dir.path}" if run_dir else ""), **config)

    epochs, stopped_early = settings["epochs"], False
    steps = -(-count(splits.train) // settings["batch"])
    for epoch in range(start_epoch, epochs + 1):
        epoch_start = time.perf_counter()
        lr = learning_rate(schedule.name, optimizer.args["lr"], Position(epoch - 1, 1, steps, epochs),
                           **schedule.args)  # the rate of the epoch's first step, as logged
        program.mask_rng = mask_stream(settings["seed"], epoch)
        shuffle = np.random.default_rng([settings["seed"], epoch, 1])
        losses = program.loss_tracker()  # a device target keeps the losses on the device until the epoch ends
        for step, batch in enumerate(batches(splits.train, settings["batch"], shuffle), start=1):
            rate = learning_rate(schedule.name, optimizer.args["lr"], Position(epoch - 1, step, steps, epochs),
                                 **schedule.args)
            program.optimizer.hyper["lr"] = rate
            taken = (parallel.step(batch, rate) if parallel is not None
                     else program.step(batch, validate=False, fetch=losses.immediate))
            loss = losses.add(taken, count(batch), step)
            if losses.immediate and not np.isfinite(loss):
                _diverged(program, run_dir, history, epoch, step, loss)
            reporter.progress(epoch, epochs, step, steps, loss)
        total, bad_step, bad_loss = losses.finish()
        if bad_step:
            _diverged(program, run_dir, history, epoch, bad_step, bad_loss)
        _update_running_statistics(program, splits.train, settings["batch"], parallel)
        record: dict[str, Any] = {"epoch": epoch, "epochs": epochs, "train_loss": total / count(splits.train)}
        validation = evaluate_arrays(program, splits.validation, task, "validation")
        record["val_loss"] = validation.loss if validation.count else None
        record.update({f"val_{k}": v for k, v in validation.metrics.items()})
        record.update(lr=lr, seconds=time.perf_counter() - epoch_start)
        history.append(record)
        reporter.epoch(record)

        monitored = record["val_loss"] if record["val_loss"] is not None else record["train_loss"]
        improved = monitored < best["loss"]
        if improved:
            best.update(loss=monitored, epoch=epoch, bad_epochs=0,
                        params={k: v.copy() for k, v in program.host_params().items()})
        else:
            best["bad_epochs"] += 1
        program.epoch = epoch
        if run_dir is not None:
            state = _state(settings, history, best, epoch, world.size)
            if improved:
                make_checkpoint(program, state).save(run_dir.best)
            _checkpoint_with_best(program, state, best).save(run_dir.last)
            run_dir.write_metrics(history)
        if settings["early_stopping"] and best["bad_epochs"] >= settings["early_stopping"]:
            stopped_early = True
            reporter.event("early_stop", f"early stopping: validation loss has not improved for "
                           f"{best['bad_epochs']} epochs; restoring the parameters of epoch {best['epoch']}",
                           best_epoch=best["epoch"])
            break

    if parallel is not None:
        parallel.close()
    restored = bool(settings["early_stopping"]) and best["params"] is not None
    if restored:
        program.params.update(best["params"])
    figures = Figures(params_epoch=best["epoch"] if restored else program.epoch, restored=restored,
                      best_epoch=best["epoch"], monitored="validation" if count(splits.validation) else "training")
    test = evaluate_arrays(program, splits.test, task, "test", prepared.class_names) if count(splits.test) else None
    seconds = time.perf_counter() - started
    if run_dir is not None:
        run_dir.write_curves(history, program.name, best["epoch"], figures.monitored)
        if test is not None:
            run_dir.write_test({**test.as_dict(), **figures.as_dict()})
        _picture_reconstructions(program, splits.test or splits.train, task, run_dir)
    reporter.event("result", _result_line(test, len(history), seconds, figures, run_dir),
                   test=test.as_dict() if test else None, seconds=seconds, **figures.as_dict(),
                   run_dir=str(run_dir.path) if run_dir else None)
    return FitResult(history, best["epoch"], stopped_early, test, run_dir.path if run_dir else None, seconds,
                     settings)


@dataclass(frozen=True)
class Figures:
    """Which parameters the test figures belong to: the best epoch's (restored by early stopping) or the last
    epoch's, and the epoch with the lowest monitored loss."""

    params_epoch: int
    restored: bool
    best_epoch: int
    monitored: str  # the loss that picks the best epoch: validation (or training, with no validation split)

    def as_dict(self) -> dict[str, Any]:
        return {"parameters": "best" if self.restored else "last", "parameters_epoch": self.params_epoch,
                "best_epoch": self.best_epoch}


def _result_line(test: Evaluation | None, epochs: int, seconds: float, figures: Figures,
                 run_dir: RunDirectory | None) -> str:
    """``test: loss 0.0893, accuracy 0.9778 (270 examples; parameters of epoch 16, the lowest validation loss,
    as in best.npz); 21 epochs in 3.4s; wrote runs/...``, or with the last epoch's parameters ``(...; parameters
    of the last epoch, 30, as in last.npz); 30 epochs in 3.4s; lowest validation loss at epoch 16 (best.npz)``"""
    saved = run_dir is not None
    if figures.restored:
        whose = (f"parameters of epoch {figures.params_epoch}, the lowest {figures.monitored} loss"
                 + (", as in best.npz" if saved else ""))
    else:
        whose = f"parameters of the last epoch, {figures.params_epoch}" + (", as in last.npz" if saved else "")
    parts = [f"{epochs} epochs in {seconds:.1f}s"]
    if test is not None:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in {"loss": test.loss, **test.metrics}.items())
        parts[0] = f"test: {scores} ({test.count} examples; {whose}); {parts[0]}"
    if figures.best_epoch and not figures.restored:
        parts.append(f"lowest {figures.monitored} loss at epoch {figures.best_epoch}"
                     + (" (best.npz)" if saved else ""))
    if run_dir is not None:
        parts.append(f"wrote {run_dir.path}")
    return "; ".join(parts)


def _per_rank(batch: int, size: int) -> str:
    low, high = batch // size, -(-batch // size)
    return str(low) if low == high else f"{low}-{high}"


def _update_running_statistics(program: Program, train: Arrays, batch: int,
                               parallel: DataParallelStep | None) -> None:
    """Batchnorm's population statistics over the training data: on several ranks, each rank runs its shard
    of every batch, whose graph computes the whole batch's statistics (the same figures as one process's)."""
    whole = batches(train, batch, None)
    program.update_running_statistics(whole if parallel is None else parallel.statistics_batches(whole))


def _state(settings: Mapping[str, Any], history: list, best: dict, epoch: int, world_size: int = 1
           ) -> dict[str, Any]:
    return {"epoch": epoch, "world_size": world_size, "settings": settings_json(settings), "history": history,
            "schedule_position": epoch, "early_stopping": {"best_loss": best["loss"], "best_epoch": best["epoch"],
                                                           "bad_epochs": best["bad_epochs"]}}


def _checkpoint_with_best(program: Program, state: dict[str, Any], best: dict) -> Checkpoint:
    """The last checkpoint also carries the best parameters so far, so a resumed run can still restore them
    at an early stop."""
    checkpoint = make_checkpoint(program, state)
    checkpoint.best_params = dict(best["params"] or {})
    return checkpoint


def _diverged(program: Program, run_dir: RunDirectory | None, history: list, epoch: int, step: int,
              loss: float) -> None:
    kept = f"; the last good checkpoint is {run_dir.last} (epoch {epoch - 1})" if run_dir and history else ""
    if run_dir is not None:
        run_dir.write_metrics(history)
    raise TrainingDiverged(f"the loss became {loss} at epoch {epoch}, step {step}: training stopped "
                           f"(try a smaller learning rate){kept}")
