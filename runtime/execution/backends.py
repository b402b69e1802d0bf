"""Backends execute a graph for a target. Each offers the same three entry points:

- ``forward(feeds, params)``: outputs and losses;
- ``gradients(feeds, params)``: also ``grad/<name>`` for every parameter and float input;
- ``train_step(feeds, params, optimizer, fetch=True)``: forward, backward and the optimizer's update of the
  parameter and state arrays in place; returns the objective before the update (with ``fetch=False`` a
  device target may return a handle that its ``loss_tracker`` adds up without copying it back).

and keeps the host's arrays current through ``pull`` and ``host_may_change``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from gradc.compiler.driver import (
    DEFAULT_ENTRY_POINTS,
    OBJECTIVE_KEY,
    PARAM_GRADIENTS,
    TRAIN_PREFIX,
    build,
    paused_gc,
    schedule,
    update_routine,
)
from gradc.compiler.graph import Graph
from gradc.compiler.types import TensorType
from gradc.dsl.diagnostics import GradcError

from .allocator import keep_freed_memory
from .compile_cache import CompileReport, compiled_entry_points, evict, load_source, program_key
from .optimizer_state import OptimizerState
from .reference import evaluate
from .threads import limit_blas_threads, start_numba_threads

Arrays = Mapping[str, np.ndarray]


class HostLossTracker:
    """The training loop's sum of batch losses, for targets whose losses are host numbers."""

    immediate = True  # each loss is known at once, so divergence is caught at its step

    def __init__(self):
        self.total, self.bad_step, self.bad_value = 0.0, 0, 0.0

    def add(self, loss: float, weight: float, step: int) -> float:
        self.total += loss * weight
        if not self.bad_step and not np.isfinite(loss):
            self.bad_step, self.bad_value = step, loss
        return loss

    def finish(self) -> tuple[float, int, float]:
        return self.total, self.bad_step, self.bad_value


class HostMemory:
    """Targets whose parameters are the host's arrays: nothing to copy either way."""

    def pull(self) -> None:
        """Make the host's parameter and optimizer-state arrays current (a device target copies back)."""

    def host_may_change(self) -> None:
        """The host may write its arrays in place: a device target uploads them before their next use."""

    def loss_tracker(self) -> HostLossTracker:
        return HostLossTracker()


class ReferenceBackend(HostMemory):
    """Node by node with the NumPy reference forwards: exact, slow, the yardstick for the other targets."""

    target = "reference"

    def __init__(self, graph: Graph, use_cache: bool = True, sibling: object = None):
        self.graph = graph

    def forward(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._run(feeds, params, {**self.graph.outputs, **self.graph.losses})

    def gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        grads = {f"grad/{n}": i for n, i in self.graph.grads.items()}
        return self._run(feeds, params, {**self.graph.outputs, **self.graph.losses, **grads})

    def param_gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        grads = {f"grad/{n}": self.graph.grads[n] for n in self.graph.params()}
        return self._run(feeds, params, {OBJECTIVE_KEY: self.graph.objective, **grads})

    def train_step(self, feeds: Arrays, params: dict[str, np.ndarray], optimizer: OptimizerState,
                   fetch: bool = True) -> float:
        g = self.graph
        wanted = {"objective": g.objective, **{n: g.grads[n] for n in params}}
        values = self._run(feeds, params, wanted)
        self.apply_update(params, values, optimizer)
        return float(values["objective"])

    def apply_update(self, params: dict[str, np.ndarray], grads: Arrays, optimizer: OptimizerState) -> None:
        for name in params:
            optimizer.definition.reference(params[name], grads[name], optimizer.state[name], optimizer.hyper,
                                           optimizer.t)

    def _run(self, feeds: Arrays, params: Arrays, wanted: dict[str, int]) -> dict[str, np.ndarray]:
        values = evaluate(self.graph, feeds, params, wanted.values())
        return {key: values[node_id] for key, node_id in wanted.items()}


class CpuBackend(HostMemory):
    """The Numba CPU target: the fused graph lowered to one ``@njit`` function per entry point."""

    target = "cpu"

    def __init__(self, graph: Graph, use_cache: bool = True, sibling: object = None):
        keep_freed_memory()  # a step's large values reuse the last step's memory (see allocator.py)
        limit_blas_threads()  # one pool of threads, Numba's, around a one-thread BLAS (see threads.py)
        start_numba_threads()  # before cached code that runs across threads is loaded (see threads.py)
        self.graph = schedule(graph)
        self.lowered = build(self.graph, "cpu", cache=use_cache)
        key = program_key(self.graph, self.target)
        start = time.perf_counter()
        self.loaded = load_source(self.lowered.source, key, use_cache)
        self.report = CompileReport(self.target, key, str(self.loaded.directory), False,
                                    seconds=time.perf_counter() - start, kernels=len(self.graph.kernels))
        self.use_cache = use_cache
        self._compiled: set[str] = set()
        self._plan = [(kind, int(key) if kind == "const" else key)
                      for kind, _, key in (arg.partition(":") for arg in self.lowered.args)]
        self._param_order = list(self.graph.params())  # computed once: the graph's order is a sort
        self._rebuilt: str | None = None  # why the cache entry was evicted and rebuilt, if it was

    # -------------------------------------------------------------- compiling
    def compile(self, entry_points: tuple[str, ...] = DEFAULT_ENTRY_POINTS) -> CompileReport:
        """Compile entry points ahead of their first call; say whether the cache served them, and why not."""
        wanted = [e for e in entry_points if e in self.lowered.entry_points and e not in self._compiled]
        cached = compiled_entry_points(self.loaded.directory) if self.use_cache else set()
        reasons = []
        if not self.use_cache:
            reasons.append("the cache is off (--no-cache)")
        elif not self.loaded.cached_source:
            reasons.append(f"no up-to-date entry for key {self.report.key[:16]}: a new graph, target, "
                           "gradc/Numba/NumPy version, or a different build of gradc's code generator")
        missing = [e for e in wanted if e not in cached]
        if self.use_cache and self.loaded.cached_source and missing:
            reasons.append(f"entry found, but {', '.join(missing)} not compiled in it yet")
        start = time.perf_counter()
        for name in wanted:
            self._function(name)
        self.report.seconds += time.perf_counter() - start
        if self._rebuilt:
            reasons.append(f"the entry could not be loaded ({self._rebuilt}): rebuilt it")
        self.report.cache_hit = not reasons
        self.report.reasons = reasons
        return self.report

    def _function(self, name: str):
        if name not in self._compiled:
            try:
                self._compile(name)
            except Exception as exc:
                if not (self.use_cache and name in compiled_entry_points(self.loaded.directory)):
                    raise
                # Numba's files for this entry point are in the cache but do not load (truncated, damaged):
                # drop the entry and compile afresh into a new one.
                self._rebuilt = f"Numba's cached code for {name} failed to load: {type(exc).__name__}: {exc}"
                evict(self.loaded, self._rebuilt)
                self.loaded = load_source(self.lowered.source, self.report.key, self.use_cache)
                self._compiled.clear()
                self._compile(name)
        return getattr(self.loaded.module, name)

    def _compile(self, name: str) -> None:
        function = getattr(self.loaded.module, name)
        args = [typed_dummy(t) for t in self._arg_types()]
        point = self.lowered.entry_points[name]
        if point.optimizer is not None:
            args += [typed_dummy(t) for t in self._param_types() for _ in point.optimizer.state]
            args += [0.1] * len(point.optimizer.hyperparameters) + [1]
        with paused_gc():  # Numba's typing and LLVM passes, like the compiler's stages
            function.compile(tuple(function.typeof_pyval(a) for a in args))
        self._compiled.add(name)

    def _param_types(self):
        params = self.graph.params()
        return [self.graph.node(params[name]).type for name in self._param_order]

    def _arg_types(self):
        g = self.graph
        inputs, params = g.inputs(), g.params()
        ids = {"input": inputs, "param": params}
        return [g.node(key if kind == "const" else ids[kind][key]).type for kind, key in self._plan]

    # -------------------------------------------------------------- running
    def _args(self, feeds: Arrays, params: Arrays) -> list[np.ndarray]:
        """The call's arguments in the generated signature's order; inputs made C-contiguous (keeping a 0-d
        input 0-d: ``np.ascontiguousarray`` would make it 1-d)."""
        return [np.asarray(feeds[key], order="C") if kind == "input" else params[key] if kind == "param"
                else self.lowered.const_arrays[key] for kind, key in self._plan]

    def forward(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call("forward", feeds, params)

    def gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call("gradients", feeds, params)

    def param_gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call(PARAM_GRADIENTS, feeds, params)

    def train_step(self, feeds: Arrays, params: dict[str, np.ndarray], optimizer: OptimizerState,
                   fetch: bool = True) -> float:
        name = TRAIN_PREFIX + optimizer.definition.name
        if name not in self.lowered.entry_points:
            raise GradcError("nothing to train: the model has no objective or no parameters")
        return float(self._function(name)(*self.entry_arguments(name, feeds, params, optimizer)))

    def entry_arguments(self, name: str, feeds: Arrays, params: Arrays,
                        optimizer: OptimizerState | None = None) -> list:
        """The arguments of generated entry point ``name`` in its signature's order (a training step's
        include the optimizer's state, hyperparameters and step count)."""
        args = self._args(feeds, params)
        if name.startswith(TRAIN_PREFIX):
            args += [*optimizer.arrays(self._param_order), *optimizer.hyperparameters(), optimizer.t]
        return args

    def apply_update(self, params: dict[str, np.ndarray], grads: Arrays, optimizer: OptimizerState) -> None:
        """The optimizer's update with given gradients: the kernel library's routine a train step calls."""
        routine = update_routine(self.target, optimizer.definition.name)
        hyper = optimizer.hyperparameters()
        for name in self._param_order:
            routine(params[name], grads[name], *optimizer.state[name], *hyper, optimizer.t)

    def _call(self, name: str, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        results = self._function(name)(*self._args(feeds, params))
        point = self.lowered.entry_points[name]
        return {key: np.asarray(value) for key, value in zip(point.returns, results, strict=True)}


def typed_dummy(t: TensorType) -> np.ndarray:
    """A tiny array of the type, for compiling a signature ahead of the first call."""
    return np.zeros(tuple(1 for _ in t.shape), dtype=t.numpy_dtype)
