"""A process that compiles program after program (a sweep, a notebook, this test suite) must not keep each
one after it is dropped (issue 12): counted in live objects, not timed."""

from __future__ import annotations

import gc
import sys

import numpy as np
from numba.core.registry import CPUDispatcher

from gradc import api


def _program(k: int):
    source = (f"model leak{k}\ninput x: f32[N, 3]\ninput t: f32[N, 2]\n"
              f"y = x -> dense({2 + k}) -> relu -> dense(2)\nloss L = mean((y - t)^2)\n")
    return api.compile(api.loads(source), target="cpu")


def _use(program) -> None:
    x = np.ones((4, 3), np.float32)
    feeds = {"x": x, "t": np.zeros((4, 2), np.float32)}
    program.run(feeds, grad=True)
    program.step(feeds, lr=0.1)


def _generated_modules(others: frozenset[str] = frozenset()) -> list[str]:
    """The generated modules in ``sys.modules``, except ``others`` (those of programs that other tests in this
    process still hold)."""
    return [name for name in sys.modules if name.startswith("gradc_program") and name not in others]


def _generated_dispatchers() -> int:
    """Live dispatchers of generated code (other tests in this process may hold some: compare counts)."""
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if type(o) is CPUDispatcher and o.py_func.__module__.startswith("gradc_program"))


def test_dropped_programs_are_released():
    others, held = frozenset(_generated_modules()), _generated_dispatchers()
    for k in range(2):
        _use(_program(k))
    assert _generated_modules(others) == []
    assert _generated_dispatchers() == held
    gc.collect()
    before = len(gc.get_objects())
    for k in range(2, 5):
        _use(_program(k))
    gc.collect()
    # Before: ~3,500 objects a program (its module, dispatchers, compile results). What stays is Numba's JIT
    # engine's handles on each program's LLVM modules (~20 small objects a program).
    assert len(gc.get_objects()) - before < 3 * 300


def test_a_program_outlives_another_of_the_same_graph():
    others, held = frozenset(_generated_modules()), _generated_dispatchers()
    first, second = _program(7), _program(7)  # one generated module, two users
    del first
    gc.collect()
    assert len(_generated_modules(others)) == 1
    _use(second)
    del second
    assert _generated_modules(others) == [] and _generated_dispatchers() == held


def test_the_kernel_library_survives_a_dropped_program():
    """A program's module imports the kernel library's helpers: releasing it must leave them compiled."""
    _use(_program(8))
    gc.collect()
    _use(_program(9))  # compiles against the same helpers (relu, dot, ...)


def _jit_engine_modules() -> int:
    """LLVM modules Numba's JIT engine owns (each compiled function's IR, several MiB a program)."""
    from numba.core.registry import cpu_target
    return len(cpu_target.target_context.codegen()._engine._ee._modules)


def test_dropped_programs_leave_the_jit_engine():
    """Before: a dropped program's LLVM modules stayed in Numba's JIT engine for good (~4 a program, most of
    the ~11 MiB that a compiled and dropped program kept). The machine code stays (Numba cannot free it)."""
    _use(_program(10))
    gc.collect()
    before = _jit_engine_modules()
    for k in range(11, 14):
        _use(_program(k))
    gc.collect()
    assert _jit_engine_modules() == before


def test_a_new_layer_width_does_not_compile_the_kernel_library_again():
    """Before: shapes were written with numbers (``empty_f32((nb, 5))``), which Numba types as literals, so
    every new width compiled the library's helpers again (and kept each compile for good)."""
    from gradc.compiler.lower import cpu_lib

    def compiled() -> dict[str, int]:
        return {name: len(f.overloads) for name, f in vars(cpu_lib).items() if hasattr(f, "overloads")}

    def classifier(classes: int) -> None:  # a loss over rows: reshape(scores, (-1, classes))
        source = (f"model rows{classes}\ninput x: f32[N, 3]\ninput y: i64[N]\n"
                  f"loss L = cross_entropy(x -> dense({classes}), y)\n")
        program = api.compile(api.loads(source), target="cpu")
        program.step({"x": np.ones((4, 3), np.float32), "y": np.zeros(4, np.int64)}, lr=0.1)

    _use(_program(20))
    classifier(4)
    before = compiled()
    _use(_program(21))
    classifier(5)
    assert compiled() == before
