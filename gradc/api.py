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
from gradc.dsl.diagnostics import GradcError
from gradc.dsl.train_schema import default_settings
from gradc.runtime.execution.params import init_params
from gradc.runtime.execution.program import Program
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.data import expose_prediction
from gradc.runtime.training.fit import data_lengths, restore
from gradc.runtime.training.interchange import export_onnx


def load(path: str | Path) -> ModelSpec:
    """Parse and check a .model file. Raises :class:`gradc.dsl.ModelError` with a location on any mistake."""
    with paused_gc():
        return build_model(parse_file(path))


def loads(source: str, path: str = "<string>") -> ModelSpec:
    """Parse and check model text."""
    with paused_gc():
        return build_model(parse_source(source, path))


def graph(model: str | Path | ModelSpec, stage: str = "optimized", dims: Mapping[str, int] | None = None) -> Graph:
    """The model's graph after pipeline stage ``stage`` (see ``gradc.compiler.passes.STAGE_NAMES``); the
    parsed stage keeps a symbolic length unless ``dims`` sizes it, the passes need a size (as :func:`compile`)."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    if stage != "parsed" or dims:
        spec = bind_lengths(spec, dims)
    return prepare(spec.graph, stage)


def compile(
    model: str | Path | ModelSpec,
    target: str = "cpu",
    seed: int = 0,
    params: Mapping[str, np.ndarray] | None = None,
    cache: bool = True,
    dims: Mapping[str, int] | None = None,
) -> Program:
    """Optimize a model and build a program for ``target`` ("cpu": Numba; "reference": NumPy, node by node),
    with parameters initialized from ``seed`` (or taken from ``params``). With ``cache``, compiled code is
    kept on disk and reused by later processes. A model with a symbolic length besides the batch (``input x:
    f32[N, T, F]``) is compiled for the sizes in ``dims`` (``{"T": 50}``); the parameters do not depend on
    them, so a program for another length can take this one's (``params=program.params``). Without ``dims``,
    the lengths of the train block's data, if it names data."""
    spec = bind_lengths(model if isinstance(model, ModelSpec) else load(model), dims)
    source = expose_prediction(spec.graph)  # a model with only a loss: what its metrics read becomes an output
    optimized = prepare(source)
    params = params if params is not None else init_params(optimized, seed)
    settings = spec.train or default_settings()
    program = Program(optimized, params, target, use_cache=cache, source=source,
                      weight_decay=settings["weight_decay"], seed=seed, train_settings=settings)
    if spec.unbound_graph is not None:  # checkpoints name the model before its lengths were bound: they hold
        program.spec_graph, program.dims = spec.unbound_graph, dict(spec.dims)  # for every length
    return program


def bind_lengths(spec: ModelSpec, dims: Mapping[str, int] | None = None) -> ModelSpec:
    """``spec`` with its symbolic lengths (a sequence's T) bound to the sizes in ``dims``, else to those of the
    train block's data; a length left without a size is an error that says how to give one."""
    spec = spec.bind(dict(dims or {}))
    if spec.length_symbols and spec.train is not None and spec.train.get("data"):
        spec = spec.bind(data_lengths(spec.graph, None, spec.train))
    if spec.length_symbols:
        names = ", ".join(spec.length_symbols)
        example = ", ".join(f'"{name}": 50' for name in spec.length_symbols)
        raise GradcError(f"model '{spec.name}' has the symbolic length {names}, and nothing gives its size: on the "
                         f"command line --dim {spec.length_symbols[0]}=50 (or data whose shapes set it); in "
                         f"Python gradc.compile(..., dims={{{example}}})")
    return spec


def load_checkpoint(model: str | Path | ModelSpec, checkpoint: str | Path, target: str = "cpu",
                    cache: bool = True, dims: Mapping[str, int] | None = None) -> Program:
    """A program with the parameters, optimizer state and feature scaling of a checkpoint written by
    ``gradc train`` or ``Program.save``. A checkpoint of a different model is refused. A model with a
    symbolic length is compiled for ``dims``, else for the lengths it was trained with."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    saved = Checkpoint.load(checkpoint)
    if spec.length_symbols and not dims:
        dims = {k: int(v) for k, v in saved.meta.get("dims", {}).items() if k in spec.length_symbols}
    program = compile(spec, target=target, cache=cache, dims=dims)
    saved.check_spec(program.spec_graph, checkpoint)
    restore(program, saved, checkpoint)
    return program


def export(program: Program, path: str | Path) -> list[str]:
    """Write ``program`` (trained or not) as an ONNX model (opset 18, the batch dimension symbolic): its
    outputs, parameters and the training data's standardization as its first nodes. Needs the ``onnx`` extra.
    Returns the output names."""
    return export_onnx(program, path)
