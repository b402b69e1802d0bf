"""The compile driver: the one way through the compiler's stages, for every caller.

    prepare(graph)              the pass pipeline (``passes/pipeline.py``) up to a named stage, "optimized"
                                by default; prepare_training does the same for the training graph
    schedule(graph)             the kernels of a prepared graph: composites expanded, then fused (stage
                                "fused": loop and op kernels)
    plan(graph)                 the schedule of every entry point (``schedule.py``): loop kernels with their
                                index maps, GEMM calls with their epilogues, what is stored
    build(graph, target)        the target's program source, rendered from the plan (``lower/<target>.py``)

The API, a program's training mode, gradcheck and every backend go through these functions; ``runtime/``
starts no compile stage any other way. (The graph IR, the op, optimizer and initializer registries are the
shared vocabulary every stage reads; they are not stages.)
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .collectives import install_sum_over_ranks
from .entry_points import OBJECTIVE_KEY, PARAM_GRADIENTS
from .graph import Graph
from .interpret import evaluate
from .lower.common import DEFAULT_ENTRY_POINTS, TRAIN_PREFIX, EntryPoint, LoweredProgram, LoweringError
from .lower.cuda_simulator import fast_thread_switching  # how the cuda target's kernels run on the simulator
from .optimizers import OPTIMIZERS
from .passes.data_parallel import SHARE_INPUT
from .passes.pipeline import PIPELINE, STAGE_NAMES, run_pipeline, schedule_graph
from .passes.precision import promote_float64
from .passes.training import (
    TRAINING_STAGE_NAMES,
    attention_entries_per_row,
    dropout_rates,
    statistic_outputs,
    training_graph,
    training_stages,
)
from .schedule import ProgramSchedule, schedule_program

__all__ = [
    "DEFAULT_ENTRY_POINTS",
    "OBJECTIVE_KEY",
    "PARAM_GRADIENTS",
    "PIPELINE",
    "SHARE_INPUT",
    "STAGE_NAMES",
    "TARGETS",
    "TRAINING_STAGE_NAMES",
    "TRAIN_PREFIX",
    "EntryPoint",
    "LoweredProgram",
    "LoweringError",
    "ProgramSchedule",
    "attention_entries_per_row",
    "build",
    "dropout_rates",
    "evaluate",
    "fast_thread_switching",
    "install_sum_over_ranks",
    "onnx_model",
    "paused_gc",
    "plan",
    "prepare",
    "prepare_float64",
    "prepare_training",
    "schedule",
    "statistic_outputs",
    "training_stages",
    "update_routine",
]


@dataclass(frozen=True)
class Target:
    """A compiled target: the module and function that render a scheduled graph into a program's source.
    Imported on first use (the cuda target's module needs numba-cuda)."""

    name: str
    module: str
    function: str
    library: str  # its kernel library: the helpers and optimizer updates generated code calls

    def lowering(self) -> Callable[..., LoweredProgram]:
        return getattr(importlib.import_module(self.module, __package__), self.function)


TARGETS: dict[str, Target] = {
    "cpu": Target("cpu", ".lower.cpu", "lower_cpu", ".lower.cpu_lib"),
    "cuda": Target("cuda", ".lower.cuda", "lower_cuda", ".lower.cuda_lib"),
}


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a compile stage runs (restored after, also on errors).

    The stages allocate many small objects that reference counting frees (nodes, graph tables, Numba's IR), and
    each allocation burst sets off collections that scan the whole heap, a large graph included: measured on a
    model of 1024 dense -> tanh layers, the passes and the schedule took 1.9-2.4 s and 0.6-0.8 s with the
    collector, 1.0-1.3 s and 0.3-0.4 s without; a cold compile of the benchmark MLP's step 2.8-3.2 s against
    2.1-2.6 s. Peak memory grew by about 4% (64 hidden layers: 443 -> 460 MiB)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare(graph: Graph, until: str = "optimized") -> Graph:
    """The graph after the pipeline's stage ``until`` (``parsed`` ... ``optimized``, or ``fused``)."""
    with paused_gc():
        return run_pipeline(graph, until)


def prepare_float64(graph: Graph) -> Graph:
    """``prepare`` of the graph with every floating-point value made f64 (gradient checks)."""
    return prepare(promote_float64(graph))


def onnx_model(graph: Graph, outputs: list[str], params: Mapping[str, Any],
               scaling: Mapping[str, tuple[Any, Any]] | None = None,
               unscaling: Mapping[str, tuple[Any, Any]] | None = None) -> bytes:
    """The serialized ONNX model (lower/onnx.py) of ``graph``'s inference: its values ``outputs`` (output
    statements, or any named value: a loss's prediction), after the evaluation pipeline up to autodiff, each
    composite that ONNX lacks replaced by its primitives."""
    from .lower.onnx import ONNX_OPS, to_onnx  # (imports onnx when called)
    from .passes.expand import expand_composites

    with paused_gc():
        g = prepare(graph, "dce").copy()
    by_name = {node.name: node.id for node in g.nodes() if node.name and node.op not in ("param",)}
    missing = [name for name in outputs if name not in g.outputs and name not in by_name]
    if missing:
        raise LoweringError(f"export: no value named {', '.join(repr(m) for m in missing)} in the model")
    g.outputs = {name: g.outputs.get(name, by_name.get(name)) for name in outputs}
    g = expand_composites(g, frozenset(ONNX_OPS))
    return to_onnx(g, g.outputs, params, scaling, unscaling)


def prepare_training(graph: Graph, weight_decay: float = 0.0, until: str = "optimized",
                     clip_norm: float = 0.0, data_parallel: bool = False) -> Graph:
    """The graph a program trains with (dropout masks fed, weight decay in the objective, gradients clipped to
    a global norm of ``clip_norm`` when it is not 0; with ``data_parallel``, a rank's graph of a data-parallel
    world: passes/data_parallel.py), after ``until``."""
    with paused_gc():
        return training_graph(graph, weight_decay, until, clip_norm, data_parallel)


def schedule(graph: Graph) -> Graph:
    """A prepared graph with its kernels: composites expanded into primitives, then fused (a graph that has
    its kernels already is returned as it is)."""
    if graph.kernels is not None:
        return graph
    with paused_gc():
        return schedule_graph(graph)


def plan(graph: Graph) -> ProgramSchedule:
    """The schedule of every entry point of ``graph`` (fused first if it is not)."""
    with paused_gc():
        return schedule_program(schedule(graph))


def build(graph: Graph, target: str, cache: bool = True) -> LoweredProgram:
    """The program source of ``graph`` (scheduled first if it is not) for a compiled target."""
    if target not in TARGETS:
        raise LoweringError(f"no compiled target {target!r} (targets: {', '.join(TARGETS)})")
    lowering = TARGETS[target].lowering()
    with paused_gc():
        return lowering(plan(graph), cache=cache)


def update_routine(target: str, optimizer: str) -> Callable[..., None]:
    """The kernel library's in-place update of one parameter, ``routine(p, g, *state, *hyperparameters, t)``:
    the same routine a compiled training step calls after its backward pass, for a step split into
    gradients, an exchange (an all-reduce) and the update."""
    library = importlib.import_module(TARGETS[target].library, __package__)
    return getattr(library, OPTIMIZERS[optimizer].routine)
