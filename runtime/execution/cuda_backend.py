"""The CUDA target: the fused graph lowered to numba-cuda kernels (:mod:`gradc.compiler.lower.cuda`).

Parameters and optimizer state live on the device. A :class:`DeviceMirror`, shared by a program's
evaluation and training backends, uploads them when the host's arrays change (new arrays, or the program
handed its arrays out for writing) and copies them back only when the host asks (``pull``: checkpoints,
``program.params``). A training step copies only its batch in; its loss stays on the device unless asked
for, and the training loop adds losses up on the device (:class:`DeviceLossTracker`), reading them once an
epoch.

Without a GPU, the target refuses with a message that names Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which runs the same kernels, slowly, on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import numpy as np

from gradc.compiler.driver import (
    DEFAULT_ENTRY_POINTS,
    PARAM_GRADIENTS,
    TRAIN_PREFIX,
    build,
    fast_thread_switching,
    schedule,
    update_routine,
)
from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .compile_cache import CompileReport, load_source, program_key
from .optimizer_state import OptimizerState

Arrays = Mapping[str, np.ndarray]
SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"


def cuda_module():
    """``numba.cuda``, once a device (or the simulator) is known to be there; else a clear error."""
    try:
        from numba import cuda
    except ImportError as error:  # pragma: no cover - numba-cuda is a dependency
        raise GradcError(f"the cuda target needs the numba-cuda package ({error})") from None
    if not cuda.is_available():
        raise GradcError(
            "no CUDA device found: the cuda target needs an NVIDIA GPU and its driver. To run the same kernels "
            f"without a GPU, on Numba's CUDA simulator (slow; for tests on small shapes), set "
            f"{SIMULATOR_ENV}=1, e.g. `{SIMULATOR_ENV}=1 gradc train MODEL --target cuda`")
    return cuda


class DeviceMirror:
    """Device copies of a program's parameters and optimizer state, and which side is newer."""

    def __init__(self, cuda):
        self.cuda = cuda
        self.params: dict[str, Any] = {}
        self.param_sources: dict[str, np.ndarray] = {}
        self.state: list[Any] = []
        self.state_sources: list[np.ndarray] = []
        self.optimizer: OptimizerState | None = None
        self.device_newer = False
        self.host_changed = False

    def upload(self, array: np.ndarray):
        return self.cuda.to_device(np.ascontiguousarray(array).reshape(array.shape or (1,)))

    def device_params(self, host: Arrays) -> dict[str, Any]:
        stale = self.host_changed or host.keys() != self.param_sources.keys() or any(
            self.param_sources[k] is not v for k, v in host.items())
        if stale:
            self.params = {k: self.upload(v) for k, v in host.items()}
            self.param_sources = dict(host)
            self.state_sources = []  # parameters changed: the optimizer state is uploaded again too
            self.host_changed = False
        return self.params

    def device_state(self, optimizer: OptimizerState, order: list[str]) -> list[Any]:
        arrays = optimizer.arrays(order)
        if optimizer is not self.optimizer or len(arrays) != len(self.state_sources) or any(
                a is not b for a, b in zip(arrays, self.state_sources, strict=True)):
            self.state = [self.upload(a) for a in arrays]
            self.state_sources = arrays
            self.optimizer = optimizer
        return self.state

    def pull(self) -> None:
        """Copy what the device changed back into the host's arrays, in place."""
        if not self.device_newer:
            return
        for name, array in self.param_sources.items():
            array[...] = self.params[name].copy_to_host().reshape(array.shape)
        for source, device in zip(self.state_sources, self.state, strict=True):
            source[...] = device.copy_to_host().reshape(source.shape)
        self.device_newer = False


class DeviceLossTracker:
    """The training loop's sum of batch losses, and the first step whose loss was not finite, on the device."""

    def __init__(self, cuda, lib):
        self.lib = lib
        self.totals = cuda.to_device(np.zeros(3))
        self.immediate = False

    def add(self, loss, weight: float, step: int) -> None:
        """Add a step's loss (its device array); nothing is copied back, so nothing is returned."""
        self.lib.accumulate_loss(loss, float(weight), step, self.totals)

    def finish(self) -> tuple[float, int, float]:
        """(sum of loss * weight, first bad step or 0, its loss): one copy from the device."""
        total, bad_step, bad_value = self.totals.copy_to_host()
        return float(total), int(bad_step), float(bad_value)


class CudaBackend:
    """The numba-cuda target: one kernel per fused group, launched by a generated host function per entry
    point."""

    target = "cuda"

    def __init__(self, graph: Graph, use_cache: bool = True, sibling: CudaBackend | None = None):
        self.cuda = cuda_module()
        from gradc.compiler.lower import cuda_lib

        self.lib = cuda_lib
        simulated = cuda_lib.ON_SIMULATOR  # as Numba read NUMBA_ENABLE_CUDASIM, one answer for the process
        self._kernel_scope = fast_thread_switching if simulated else nullcontext
        self.graph = schedule(graph)
        self.lowered = build(self.graph, "cuda", cache=use_cache and not simulated)
        key = program_key(self.graph, self.target + ("-simulator" if simulated else ""))
        start = time.perf_counter()
        self.loaded = load_source(self.lowered.source, key, use_cache)
        self.report = CompileReport(self.target, key, str(self.loaded.directory), False,
                                    seconds=time.perf_counter() - start, kernels=len(self.graph.kernels))
        self.use_cache = use_cache
        self.mirror = sibling.mirror if sibling is not None else DeviceMirror(self.cuda)
        self.workspace = cuda_lib.Workspace()
        self.constants = {k: self.cuda.to_device(v.reshape(v.shape or (1,)))
                          for k, v in self.lowered.const_arrays.items()}
        self._plan = [(kind, int(key) if kind == "const" else key)
                      for kind, _, key in (arg.partition(":") for arg in self.lowered.args)]
        self._param_order = list(self.graph.params())
        self._types = {n: self.graph.node(i).type for n, i in self.graph.inputs().items()}
        self._result_types = {**{n: self.graph.node(i).type for n, i in self.graph.outputs.items()},
                              **{n: self.graph.node(i).type for n, i in self.graph.losses.items()},
                              **{f"grad/{n}": self.graph.node(i).type for n, i in self.graph.grads.items()}}
        self._compiled: set[str] = set()

    # -------------------------------------------------------------- compiling
    def compile(self, entry_points: tuple[str, ...] = DEFAULT_ENTRY_POINTS):
        """Compile entry points ahead of their first use: numba-cuda compiles a kernel at its first launch,
        so each entry point runs once on a batch of one zero row, with scratch parameters."""
        wanted = [e for e in entry_points if e in self.lowered.entry_points and e not in self._compiled]
        start = time.perf_counter()
        for name in wanted:
            feeds = {n: np.zeros(tuple(1 if isinstance(d, str) else d for d in t.shape), t.numpy_dtype)
                     for n, t in self._types.items()}
            params = {n: np.zeros_like(self.mirror.param_sources[n]) if n in self.mirror.param_sources else
                      np.zeros(self.graph.node(i).type.shape, self.graph.node(i).type.numpy_dtype)
                      for n, i in self.graph.params().items()}
            scratch = DeviceMirror(self.cuda)
            args = self._args(feeds, scratch.device_params(params))
            point = self.lowered.entry_points[name]
            if point.optimizer is not None:
                optimizer = OptimizerState.create(point.optimizer.name, params)
                optimizer.t = 1
                args += scratch.device_state(optimizer, self._param_order) + optimizer.hyperparameters() + [1]
            self._launch(name, *args)
            self.cuda.synchronize()
        self.report.seconds += time.perf_counter() - start
        self.report.cache_hit = None  # numba-cuda compiles each kernel at its first launch, from its own cache
        self.report.reasons = ["the cuda target compiles each kernel at its first launch; on a GPU numba-cuda "
                               "keeps the compiled kernels beside the program's source in the cache entry"]
        return self.report

    # -------------------------------------------------------------- running
    def _launch(self, name: str, *args: Any):
        """Run the host function of an entry point (which launches its kernels)."""
        with self._kernel_scope():
            results = getattr(self.loaded.module, name)(self.workspace, *args)
        self._compiled.add(name)
        return results

    def _args(self, feeds: Arrays, device_params: dict[str, Any]) -> list[Any]:
        args = []
        for kind, key in self._plan:
            if kind == "input":
                host = np.ascontiguousarray(feeds[key])
                buffer = self.workspace.array(("input", key), host.shape, host.dtype)
                buffer.copy_to_device(host.reshape(buffer.shape))
                args.append(buffer)
            elif kind == "param":
                args.append(device_params[key])
            else:
                args.append(self.constants[key])
        return args

    def forward(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call("forward", feeds, params)

    def gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call("gradients", feeds, params)

    def param_gradients(self, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        return self._call(PARAM_GRADIENTS, feeds, params)

    def _call(self, name: str, feeds: Arrays, params: Arrays) -> dict[str, np.ndarray]:
        args = self._args(feeds, self.mirror.device_params(params))
        results = self._launch(name, *args)
        point = self.lowered.entry_points[name]
        out = {}
        for key, value in zip(point.returns, results, strict=True):
            host = value.copy_to_host()
            out[key] = host if self._result_types[key].shape else host.reshape(())
        return out

    def train_step(self, feeds: Arrays, params: dict[str, np.ndarray], optimizer: OptimizerState,
                   fetch: bool = True):
        """One step on the device; the loss is copied back only with ``fetch`` (else its device array)."""
        name = TRAIN_PREFIX + optimizer.definition.name
        if name not in self.lowered.entry_points:
            raise GradcError("nothing to train: the model has no objective or no parameters")
        args = self._args(feeds, self.mirror.device_params(params))
        args += self.mirror.device_state(optimizer, self._param_order)
        loss = self._launch(name, *args, *optimizer.hyperparameters(), optimizer.t)
        self.mirror.device_newer = True
        return float(loss.copy_to_host()[0]) if fetch else loss

    def apply_update(self, params: dict[str, np.ndarray], grads: Arrays, optimizer: OptimizerState) -> None:
        """The optimizer's update with given (host) gradients, on the device: the routine a train step calls."""
        routine = update_routine(self.target, optimizer.definition.name)
        device = self.mirror.device_params(params)
        state = self.mirror.device_state(optimizer, self._param_order)
        per_param, hyper = len(optimizer.definition.state), optimizer.hyperparameters()
        with self._kernel_scope():
            for k, name in enumerate(self._param_order):
                own = state[k * per_param:(k + 1) * per_param]
                routine(device[name], self.mirror.upload(grads[name]), *own, *hyper, optimizer.t)
        self.mirror.device_newer = True

    # -------------------------------------------------------------- the host's view
    def pull(self) -> None:
        self.mirror.pull()

    def host_may_change(self) -> None:
        self.mirror.host_changed = True

    def loss_tracker(self) -> DeviceLossTracker:
        return DeviceLossTracker(self.cuda, self.lib)
