"""Checkpoints: one .npz per checkpoint, written atomically (temporary file, then rename) and read with
``allow_pickle=False``.

Arrays: ``param/<name>``, ``optimizer/<name>/<k>`` (the optimizer's state for each parameter),
``scaling/mean|std/<input>`` (the feature standardization), ``best/<name>`` (in ``last.npz``: the best
parameters so far, for early stopping after a resume) and ``meta``, a JSON document stored as bytes:
the format version, the spec hash, the optimizer (name, hyperparameters, step count), the schedule, the
epoch completed, the early-stopping state, the history of epoch records and the class names.

:meth:`Checkpoint.load` checks the whole structure before anything uses it (every entry's name and dtype,
the metadata's fields and their types, the optimizer state's count and shapes, the scaling pairs), so a
damaged or crafted file is an error that names what is wrong, never a crash later on.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.optimizers import OPTIMIZERS
from gradc.dsl.diagnostics import DataError, GradcError
from gradc.dsl.train_schema import CallValue, check_settings

from ..files import load_npz, save_npz

FORMAT = 1


def spec_hash(graph: Graph) -> str:
    """A hash of what a model computes (ops, types, attributes and names; not source positions), so editing
    comments or the train block keeps checkpoints usable, and changing a layer does not."""
    rows = []
    for node in graph.nodes():
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sorted(node.attrs.items())}
        rows.append([node.id, node.op, list(node.inputs), str(node.type), node.name,
                     json.dumps(attrs, default=_attr_text)])
    interface = [sorted(graph.outputs.items()), sorted(graph.losses.items()), graph.objective]
    return hashlib.sha256(json.dumps([rows, interface]).encode()).hexdigest()[:16]


def _attr_text(value: Any) -> Any:
    """An attribute JSON cannot hold: a scan's body as what it computes (its own hash), anything else as text."""
    return spec_hash(value) if isinstance(value, Graph) else str(value)


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    meta: dict[str, Any]
    optimizer_state: dict[str, list[np.ndarray]] = field(default_factory=dict)
    scaling: dict[str, np.ndarray] = field(default_factory=dict)
    best_params: dict[str, np.ndarray] = field(default_factory=dict)  # in a last checkpoint: the best so far

    def save(self, path: str | Path) -> None:
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        for name, state in self.optimizer_state.items():
            arrays.update({f"optimizer/{name}/{k}": a for k, a in enumerate(state)})
        arrays.update(self.scaling)
        arrays.update({f"best/{k}": v for k, v in self.best_params.items()})
        arrays["meta"] = np.frombuffer(json.dumps({"format": FORMAT, **self.meta}).encode(), dtype=np.uint8)
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read and check a checkpoint; anything malformed is a :class:`DataError` naming the entry."""
        arrays = load_npz(path, "checkpoint")
        if "meta" not in arrays:
            raise DataError(f"{path} is not a gradc checkpoint (it has no 'meta' entry)")
        try:
            return cls._from_arrays(arrays)
        except CheckpointProblem as problem:
            raise DataError(f"{path}: damaged checkpoint: {problem}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> Checkpoint:
        meta = _read_meta(arrays.pop("meta"))
        entries: dict[str, dict[str, np.ndarray]] = {"param": {}, "best": {}, "scaling": {}}
        state: dict[str, dict[int, np.ndarray]] = {}
        for key, array in arrays.items():
            match = _entry_match(key)
            if match is None:
                raise CheckpointProblem(f"unexpected entry '{key}' (entries are param/<name>, optimizer/<name>/<k>, "
                                        "scaling/mean|std/<input>, best/<name> and meta)")
            if array.dtype.kind not in "biuf":
                raise CheckpointProblem(f"entry '{key}' holds {array.dtype}, not numbers")
            kind, name = match["kind"], match["name"]
            if kind == "optimizer":
                state.setdefault(name, {})[int(match["index"])] = array
            else:
                entries[kind][key if kind == "scaling" else name] = array
        params = entries["param"]
        _check_optimizer(meta, params, state)
        _check_pairs(entries["scaling"])
        for name, array in entries["best"].items():
            if name not in params or array.shape != params[name].shape:
                raise CheckpointProblem(f"entry 'best/{name}' does not match a parameter of the same shape")
        ordered = {name: [arrays_by_index[k] for k in sorted(arrays_by_index)]
                   for name, arrays_by_index in state.items()}
        return cls(params, meta, ordered, entries["scaling"], entries["best"])

    def check_spec(self, graph: Graph, path: str | Path) -> None:
        mine = spec_hash(graph)
        if self.meta.get("spec_hash") != mine:
            raise DataError(f"checkpoint {path} was made from a different model spec "
                            f"('{self.meta.get('model')}', spec hash {self.meta.get('spec_hash')}; this model "
                            f"'{graph.model_name}' has {mine}): its layers, shapes or operations differ")


class CheckpointProblem(Exception):
    """What is wrong with a checkpoint's structure (raised as a :class:`DataError` with its path)."""


ENTRY = re.compile(r"(?P<kind>param|best)/(?P<name>[^/]+)|(?P<kind2>optimizer)/(?P<name2>[^/]+)/(?P<index>\d+)"
                   r"|scaling/(?:mean|std)/[^/]+")


def _entry_match(key: str) -> dict[str, Any] | None:
    match = ENTRY.fullmatch(key)
    if match is None:
        return None
    if match["kind"]:
        return {"kind": match["kind"], "name": match["name"], "index": None}
    if match["kind2"]:
        return {"kind": "optimizer", "name": match["name2"], "index": match["index"]}
    return {"kind": "scaling", "name": key, "index": None}


def _read_meta(entry: np.ndarray) -> dict[str, Any]:
    if entry.dtype != np.uint8 or entry.ndim != 1:
        raise CheckpointProblem(f"'meta' must be JSON text stored as bytes (uint8[n]), got {entry.dtype}"
                                f"{list(entry.shape)}")
    try:
        meta = json.loads(entry.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointProblem(f"unreadable metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointProblem(f"the metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointProblem(f"checkpoint format {meta.get('format')!r} is not {FORMAT}")
    for key, (accepts, meaning, required) in META_FIELDS.items():
        if key not in meta:
            if required:
                raise CheckpointProblem(f"the metadata has no '{key}' ({meaning})")
            continue
        if not accepts(meta[key]):
            raise CheckpointProblem(f"metadata '{key}' must be {meaning}, got {_short(meta[key])}")
    if "settings" in meta:
        try:
            check_settings({k: CallValue(v["name"], v["args"]) if isinstance(v, dict) else v
                            for k, v in meta["settings"].items()})
        except GradcError as error:
            raise CheckpointProblem(f"metadata 'settings': {error.message}") from None
    return meta


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _call_value(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"name", "args"} and isinstance(value["name"], str)
            and isinstance(value["args"], dict) and all(_number(v) for v in value["args"].values()))


def _settings(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _call_value(v) if k in ("optimizer", "schedule") else not isinstance(v, dict | list)
        for k, v in value.items())


def _record(value: Any) -> bool:
    return isinstance(value, dict) and _count(value.get("epoch")) and all(
        v is None or _number(v) for v in value.values())


META_FIELDS: dict[str, tuple[Callable[[Any], bool], str, bool]] = {
    "model": (lambda v: isinstance(v, str), "the model's name", True),
    "spec_hash": (lambda v: isinstance(v, str), "the model's spec hash, a string", True),
    "optimizer": (lambda v: v in OPTIMIZERS, f"an optimizer: {', '.join(OPTIMIZERS)}", True),
    "hyperparameters": (lambda v: isinstance(v, dict) and all(_number(x) and math.isfinite(x) for x in v.values()),
                        "an object of finite numbers", True),
    "step": (_count, "a step count, an integer >= 0", False),
    "epoch": (_count, "an epoch number, an integer >= 0", False),
    "settings": (_settings, "an object of train settings", False),
    "history": (lambda v: isinstance(v, list) and all(_record(r) for r in v),
                "a list of epoch records (objects of numbers with an 'epoch')", False),
    "early_stopping": (lambda v: isinstance(v, dict) and all(_number(x) for x in v.values())
                       and all(_count(v.get(k, 0)) for k in ("best_epoch", "bad_epochs")),
                       "an object with best_loss, best_epoch and bad_epochs", False),
    "classes": (lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
                "a list of class names", False),
    "dims": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and _count(x) and x > 0 for k, x in v.items()),
             "an object of the sizes the model's symbolic lengths were trained at", False),
}


def _check_optimizer(meta: Mapping[str, Any], params: Mapping[str, np.ndarray],
                     state: Mapping[str, Mapping[int, np.ndarray]]) -> None:
    definition = OPTIMIZERS[meta["optimizer"]]
    unknown = set(meta["hyperparameters"]) - set(definition.hyperparameters)
    if unknown:
        raise CheckpointProblem(f"metadata 'hyperparameters' has {sorted(unknown)[0]!r}, which optimizer "
                                f"{definition.name} does not take ({', '.join(definition.hyperparameters)})")
    for name, arrays in state.items():
        if name not in params:
            raise CheckpointProblem(f"optimizer state for '{name}', which is not a parameter in the checkpoint")
        if sorted(arrays) != list(range(len(definition.state))):
            raise CheckpointProblem(f"optimizer state of '{name}' has entries {sorted(arrays)}; {definition.name} "
                                    f"keeps {len(definition.state)} per parameter "
                                    f"({', '.join(definition.state) or 'none'})")
        for index, array in arrays.items():
            if array.shape != params[name].shape:
                raise CheckpointProblem(f"optimizer state 'optimizer/{name}/{index}' has shape {array.shape}, "
                                        f"but parameter '{name}' has {params[name].shape}")


def _check_pairs(scaling: Mapping[str, np.ndarray]) -> None:
    for key, array in scaling.items():
        kind, name = key.split("/")[1:]
        other = f"scaling/{'std' if kind == 'mean' else 'mean'}/{name}"
        if other not in scaling:
            raise CheckpointProblem(f"entry '{key}' has no '{other}' beside it")
        if array.shape != scaling[other].shape:
            raise CheckpointProblem(f"'{key}' and '{other}' have different shapes")
        if array.dtype.kind != "f" or not np.isfinite(array).all() or (kind == "std" and (array <= 0).any()):
            raise CheckpointProblem(f"'{key}' must hold finite floats" + (" above 0" if kind == "std" else ""))
