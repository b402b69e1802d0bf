"""Checkpoints: one .npz per checkpoint, written atomically (temporary file, then rename) and read with
``allow_pickle=False``.

Arrays: ``param/<name>``, ``optimizer/<name>/<k>`` (the optimizer's state for each parameter),
``scaling/mean|std/<input>`` (the feature standardization), ``best/<name>`` (in ``last.npz``: the best
parameters so far, for early stopping after a resume) and ``meta``, a JSON document stored as bytes:
the format version, the spec hash, the optimizer (name, hyperparameters, step count), the schedule, the
epoch completed, the early-stopping state and the history of epoch records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import DataError

from .files import load_npz, save_npz

FORMAT = 1


def spec_hash(graph: Graph) -> str:
    """A hash of what a model computes (ops, types, attributes and names; not source positions), so editing
    comments or the train block keeps checkpoints usable, and changing a layer does not."""
    rows = []
    for node in graph.nodes():
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sorted(node.attrs.items())}
        rows.append([node.id, node.op, list(node.inputs), str(node.type), node.name, json.dumps(attrs, default=str)])
    interface = [sorted(graph.outputs.items()), sorted(graph.losses.items()), graph.objective]
    return hashlib.sha256(json.dumps([rows, interface]).encode()).hexdigest()[:16]


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
        arrays = load_npz(path, "checkpoint")
        if "meta" not in arrays:
            raise DataError(f"{path} is not a gradc checkpoint (it has no 'meta' entry)")
        try:
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable checkpoint metadata ({exc})") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: checkpoint format {meta.get('format')} is not {FORMAT}")
        params = {k.removeprefix("param/"): v for k, v in arrays.items() if k.startswith("param/")}
        state: dict[str, list[np.ndarray]] = {}
        for key in sorted((k for k in arrays if k.startswith("optimizer/")), key=lambda k: int(k.rsplit("/", 1)[1])):
            name = key.removeprefix("optimizer/").rsplit("/", 1)[0]
            state.setdefault(name, []).append(arrays[key])
        scaling = {k: v for k, v in arrays.items() if k.startswith("scaling/")}
        best = {k.removeprefix("best/"): v for k, v in arrays.items() if k.startswith("best/")}
        return cls(params, meta, state, scaling, best)

    def check_spec(self, graph: Graph, path: str | Path) -> None:
        mine = spec_hash(graph)
        if self.meta.get("spec_hash") != mine:
            raise DataError(f"checkpoint {path} was made from a different model spec "
                            f"('{self.meta.get('model')}', spec hash {self.meta.get('spec_hash')}; this model "
                            f"'{graph.model_name}' has {mine}): its layers, shapes or operations differ")
