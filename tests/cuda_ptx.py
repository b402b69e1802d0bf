"""Check that the kernels the cuda target launches compile for a real GPU, without one.

The simulator runs kernels as Python, so it never type-checks them the way numba-cuda does for a device.
:class:`LaunchRecorder` (in a process on the simulator) writes down every kernel launched and the Numba
types of its arguments; :func:`main` (in a process without the simulator) compiles each one to PTX for
``--cc`` through NVVM, with the same signature, and reports what fails. A matmul launched with one tile
size is compiled with every tile size its table holds.

    python tests/cuda_ptx.py LAUNCHES.json [--cc 9.0] [--shard K/N]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

GENERATED_PREFIX = "gradc_program_"


def type_spec(value) -> list:
    """A JSON description of the Numba type a launch argument gets on a real device."""
    array = getattr(value, "_ary", value)  # the simulator's device arrays wrap a NumPy array
    if isinstance(array, np.ndarray):
        layout = "C" if array.flags.c_contiguous else "F" if array.flags.f_contiguous else "A"
        return ["array", array.dtype.name, array.ndim, layout]
    if isinstance(value, bool | np.bool_):
        return ["scalar", "bool"]
    if isinstance(value, int):
        return ["scalar", "int64"]
    if isinstance(value, float):
        return ["scalar", "float64"]
    if isinstance(value, np.generic):
        return ["scalar", value.dtype.name]
    raise TypeError(f"a kernel argument of an unexpected type: {type(value).__name__}")


class LaunchRecorder:
    """Records the simulator's kernel launches (not device-function calls) while active."""

    def __init__(self):
        self.launches: dict[tuple, dict] = {}
        self.sources: dict[str, str] = {}

    def __enter__(self) -> LaunchRecorder:
        from numba.cuda.simulator import kernel

        self._kernel_class = kernel.FakeCUDAKernel
        self._original_call = original = kernel.FakeCUDAKernel.__call__
        recorder = self

        def recording_call(launched, *args):
            if not launched._device and not kernel._get_kernel_context():
                recorder.add(launched.fn, args)
            return original(launched, *args)

        kernel.FakeCUDAKernel.__call__ = recording_call
        return self

    def __exit__(self, *exc) -> None:
        self._kernel_class.__call__ = self._original_call

    def add(self, function, args) -> None:
        """Note a launch, once per kernel text and signature (programs share kernels of the same text)."""
        signature = [type_spec(a) for a in args]
        key = (inspect.getsource(function), json.dumps(signature))
        if key in self.launches:
            return
        if function.__module__.startswith(GENERATED_PREFIX):
            module = sys.modules[function.__module__]
            self.sources[function.__module__] = Path(module.__file__).read_text()
        self.launches[key] = {"module": function.__module__, "function": function.__name__, "signature": signature}

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"launches": list(self.launches.values()), "sources": self.sources}))


# ---------------------------------------------------------------- the compiling side (no simulator)


def _numba_type(spec: list):
    from numba import types
    from numba.np.numpy_support import from_dtype

    if spec[0] == "array":
        _, dtype, ndim, layout = spec
        return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)
    return types.boolean if spec[1] == "bool" else from_dtype(np.dtype(spec[1]))


def _modules(sources: dict[str, str], folder: Path) -> dict[str, object]:
    modules = {}
    for name, text in sources.items():
        path = folder / f"{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def _siblings(module, dispatcher) -> list:
    """The kernel and, if a table (a matmul's tile sizes) holds it, every kernel of that table."""
    for value in vars(module).values():
        if isinstance(value, dict) and any(v is dispatcher for v in value.values()):
            return list(value.values())
    return [dispatcher]


def _without_a_driver(cc: tuple[int, int]) -> None:
    """numba-cuda compiles a device function for the current device's compute capability, which needs a
    driver: answer with ``cc`` instead (this process only compiles)."""
    from types import SimpleNamespace

    from numba.cuda import dispatcher

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)


def compile_launches(record: dict, cc: tuple[int, int]) -> tuple[int, list[str]]:
    """Compile every recorded launch to PTX; (kernels compiled, failures)."""
    from numba import cuda

    _without_a_driver(cc)
    compiled, failures, done = 0, [], set()
    with tempfile.TemporaryDirectory() as folder:
        modules = _modules(record["sources"], Path(folder))
        for launch in record["launches"]:
            name = launch["module"]
            module = modules.get(name) or importlib.import_module(name)
            signature = tuple(_numba_type(s) for s in launch["signature"])
            for kernel in _siblings(module, getattr(module, launch["function"])):
                key = (name, kernel.py_func.__name__, signature)
                if key in done:
                    continue
                done.add(key)
                try:
                    cuda.compile_ptx(kernel.py_func, signature, cc=cc)
                    compiled += 1
                except Exception as error:  # every failure is reported, with its kernel
                    failures.append(f"{kernel.py_func.__name__}{signature}: {type(error).__name__}: "
                                    f"{str(error).splitlines()[0] if str(error) else ''}")
    return compiled, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("launches", type=Path)
    parser.add_argument("--cc", default="9.0", help="the compute capability to compile for")
    parser.add_argument("--shard", default="0/1", help="K/N: compile only every N-th launch, from the K-th")
    args = parser.parse_args(argv)
    cc = tuple(int(p) for p in args.cc.split("."))
    shard, shards = (int(p) for p in args.shard.split("/"))
    record = json.loads(args.launches.read_text())
    record["launches"] = record["launches"][shard::shards]
    compiled, failures = compile_launches(record, cc)
    print(json.dumps({"compiled": compiled, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
