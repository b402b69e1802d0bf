"""The public Python API.

    spec = gradc.load("models/polynomial.model")          # parse and check
    prog = gradc.compile("models/polynomial.model")       # optimize and build a program
    prog.run({"x": 1.0, "y": 2.0}, grad=True)             # {"f": 12.0, "grad/x": 10.0, "grad/y": 7.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gradc.compiler.frontend import ModelSpec, build_model
from gradc.compiler.graph import Graph
from gradc.compiler.passes import optimize, run_pipeline
from gradc.dsl import parse_file, parse_source
from gradc.runtime.params import init_params
from gradc.runtime.program import Program


def load(path: str | Path) -> ModelSpec:
    """Parse and check a .model file. Raises :class:`gradc.dsl.ModelError` with a location on any mistake."""
    return build_model(parse_file(path))


def loads(source: str, path: str = "<string>") -> ModelSpec:
    """Parse and check model text."""
    return build_model(parse_source(source, path))


def graph(model: str | Path | ModelSpec, stage: str = "optimized") -> Graph:
    """The model's graph after pipeline stage ``stage`` (see ``gradc.compiler.passes.STAGE_NAMES``)."""
    spec = model if isinstance(model, ModelSpec) else load(model)
    return run_pipeline(spec.graph, stage)


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
    optimized = optimize(spec.graph)
    params = params if params is not None else init_params(optimized, seed)
    return Program(optimized, params, target, use_cache=cache)
