"""The public Python API.

    spec = gradc.load("models/polynomial.model")          # parse and check
    prog = gradc.compile("models/polynomial.model")       # optimize and build a program
    prog.run({"x": 1.0, "y": 2.0}, grad=True)             # {"f": 12.0, "grad/x": 10.0, "grad/y": 7.0}

    prog = gradc.compile("models/mlp_digits.model")
    result = prog.fit("digits", epochs=5)                  # the train block's settings, any overridden
    prog.evaluate("digits").metrics                        # {"accuracy": ...} on the test split
    prog.save("digits.npz")
    prog = gradc.load_checkpoint("models/mlp_digits.model", "digits.npz")
    prog.predict({"x": images})["probs"]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gradc.compiler.driver import paused_gc, prepare
from gradc.compiler.frontend import ModelSpec, build_model
from gradc.compiler.graph import Graph
from gradc.dsl import parse_file, parse_source
from gradc.dsl.train_schema import default_settings
from gradc.runtime.execution.params import init_params
from gradc.runtime.execution.program import Program
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.data import expose_prediction
from gradc.runtime.training.fit import restore


def load(path: str | Path) -> ModelSpec:
    """Parse and check a .model file. Raises :class:`gradc.dsl.ModelError` with a location on any mistake."""
    with paused_gc():
        return build_model(parse_file(path))


def loads(source: str, path: str = "<string>") -> ModelSpec:
    """Parse and check model text."""
    with paused_gc():
        return build_model(parse_source(source, path))


def graph(model: str | Path | ModelSpec, stage: str = "optimized") -> Graph:
    """The model's graph after pipeline stage ``stage`` (see ``gradc.compiler.passes.STAGE_NAMES``)."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    return prepare(spec.graph, stage)


def compile(
    model: str | Path | ModelSpec,
    target: str = "cpu",
    seed: int = 0,
    params: Mapping[str, np.ndarray] | None = None,
    cache: bool = True,
) -> Program:
    """Optimize a model and build a program for ``target`` ("cpu": Numba; "reference": NumPy, node by node),
    with parameters initialized from ``seed`` (or taken from ``params``). With ``cache``, compiled code is
    kept on disk and reused by later processes."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    source = expose_prediction(spec.graph)  # a model with only a loss: what its metrics read becomes an output
    optimized = prepare(source)
    params = params if params is not None else init_params(optimized, seed)
    settings = spec.train or default_settings()
    return Program(optimized, params, target, use_cache=cache, source=source,
                   weight_decay=settings["weight_decay"], seed=seed, train_settings=settings)


def load_checkpoint(model: str | Path | ModelSpec, checkpoint: str | Path, target: str = "cpu",
                    cache: bool = True) -> Program:
    """A program with the parameters, optimizer state and feature scaling of a checkpoint written by
    ``gradc train`` or ``Program.save``. A checkpoint of a different model is refused."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    saved = Checkpoint.load(checkpoint)
    program = compile(spec, target=target, cache=cache)
    saved.check_spec(program.graph, checkpoint)
    restore(program, saved, checkpoint)
    return program
