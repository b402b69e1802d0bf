"""The compile driver: the one way through the compiler's stages, for every caller.

    prepare(graph)              the pass pipeline (``passes/pipeline.py``) up to a named stage, "optimized"
                                by default; prepare_training does the same for the training graph
    schedule(graph)             the kernels of a prepared graph: composites expanded, then fused (stage
                                "fused": loop and op kernels)
    build(graph, target)        the target's program source for a scheduled graph (``lower/<target>.py``)

The API, a program's training mode, gradcheck and every backend go through these functions; ``runtime/``
starts no compile stage any other way. (The graph IR, the op, optimizer and initializer registries are the
shared vocabulary every stage reads; they are not stages.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .graph import Graph
from .lower.common import DEFAULT_ENTRY_POINTS, TRAIN_PREFIX, EntryPoint, LoweredProgram, LoweringError
from .lower.cuda_simulator import fast_thread_switching  # how the cuda target's kernels run on the simulator
from .optimizers import OPTIMIZERS
from .passes.pipeline import PIPELINE, STAGE_NAMES, run_pipeline, schedule_graph
from .passes.precision import promote_float64
from .passes.training import TRAINING_STAGE_NAMES, dropout_rates, statistic_outputs, training_graph, training_stages

__all__ = [
    "DEFAULT_ENTRY_POINTS", "PIPELINE", "STAGE_NAMES", "TARGETS", "TRAINING_STAGE_NAMES", "TRAIN_PREFIX", "EntryPoint",
    "LoweredProgram", "LoweringError", "build", "dropout_rates", "fast_thread_switching", "prepare", "prepare_float64",
    "prepare_training", "schedule", "statistic_outputs", "training_stages",
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


def prepare(graph: Graph, until: str = "optimized") -> Graph:
    """The graph after the pipeline's stage ``until`` (``parsed`` ... ``optimized``, or ``fused``)."""
    return run_pipeline(graph, until)


def prepare_float64(graph: Graph) -> Graph:
    """``prepare`` of the graph with every floating-point value made f64 (gradient checks)."""
    return prepare(promote_float64(graph))


def prepare_training(graph: Graph, weight_decay: float = 0.0, until: str = "optimized") -> Graph:
    """The graph a program trains with (dropout masks fed, weight decay in the objective), after ``until``."""
    return training_graph(graph, weight_decay, until)


def schedule(graph: Graph) -> Graph:
    """A prepared graph with its kernels: composites expanded into primitives, then fused (a graph that has
    its kernels already is returned as it is)."""
    return graph if graph.kernels is not None else schedule_graph(graph)


def build(graph: Graph, target: str, cache: bool = True) -> LoweredProgram:
    """The program source of ``graph`` (scheduled first if it is not) for a compiled target."""
    if target not in TARGETS:
        raise LoweringError(f"no compiled target {target!r} (targets: {', '.join(TARGETS)})")
    return TARGETS[target].lowering()(schedule(graph), cache=cache)


def update_routine(target: str, optimizer: str) -> Callable[..., None]:
    """The kernel library's in-place update of one parameter, ``routine(p, g, *state, *hyperparameters, t)``:
    the same routine a compiled training step calls after its backward pass, for a step split into
    gradients, an exchange (an all-reduce) and the update."""
    library = importlib.import_module(TARGETS[target].library, __package__)
    return getattr(library, OPTIMIZERS[optimizer].routine)
