"""Cutting and joining: ``x[...]`` agrees with NumPy's basic indexing (or is a located error where NumPy's
result would be empty or the index is out of range), and slices, pads and concatenations are index maps that
the loops reading them compose, never copies in the forward pass."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_targets import assert_cpu_matches_reference

import gradc
from gradc.compiler.driver import plan, prepare
from gradc.compiler.schedule import GemmKernel, LoopKernel
from gradc.dsl.diagnostics import ModelError
from gradc.runtime.execution.reference import evaluate

SHAPE = (3, 5, 4)
BOUNDS = st.one_of(st.none(), st.integers(-7, 7))


@st.composite
def subscripts(draw):
    """A subscript in the model language and the same index for NumPy."""
    items, index = [], []
    for _ in range(draw(st.integers(1, len(SHAPE)))):
        kind = draw(st.sampled_from(["int", "slice", "slice", "ellipsis", "none"]))
        if kind == "int":
            i = draw(st.integers(-6, 6))
            items.append(str(i))
            index.append(i)
        elif kind == "slice":
            start, stop = draw(BOUNDS), draw(BOUNDS)
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
            items.append(":".join("" if b is None else str(b) for b in (start, stop)) +
                         ("" if step is None else f":{step}"))
            index.append(slice(start, stop, step))
        elif kind == "none":
            items.append("none")
            index.append(None)
        else:
            items.append("...")
            index.append(Ellipsis)
    return ", ".join(items), tuple(index)


def numpy_result(x: np.ndarray, index: tuple) -> np.ndarray | None:
    try:
        value = x[index]
    except IndexError:
        return None
    return None if value.size == 0 else value


@settings(max_examples=200, deadline=None)
@given(subscripts())
def test_subscripts_agree_with_numpy(subscript):
    text, index = subscript
    source = f"model s\ninput x: f64[{', '.join(map(str, SHAPE))}]\noutput y = x[{text}] * 1.0\n"
    x = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE)
    expected = numpy_result(x, index)
    try:
        spec = gradc.loads(source)
    except ModelError as error:
        assert expected is None, f"x[{text}] is {expected!r} in NumPy, but: {error}"
        assert error.location is not None and error.location.line == 3
        return
    assert expected is not None, f"x[{text}] is empty or an error in NumPy, but the model was accepted"
    graph = spec.graph
    y = graph.outputs["y"]
    np.testing.assert_array_equal(evaluate(graph, {"x": x}, {}, [y])[y], expected)


CUTS = """model cuts
input x: f32[N, 6]
input t: f32[N, 4]
param w: f32[7, 4] = normal(std=0.3)
a = x[:, 1:5]
b = x[..., ::-2]
c = concat(a, b, axis=1)
d = pad(x[:, 0:2], 1, 1, value=0.5)
e = c @ w + tanh(d) * x[:, 3:4] + x[:, 3][:, none]
loss L = mean((e - t)^2)
"""


def test_the_forward_pass_reads_through_every_cut():
    """No slice, pad or concatenation exists in memory in the forward pass: the loops read x through maps
    (with guards where a pad or a part of the concatenation begins)."""
    schedule = plan(prepare(gradc.loads(CUTS.replace(" + x[:, 3][:, none]", "")).graph))
    forward = schedule.entries["forward"]
    graph = schedule.graph
    loops = [k.epilogue if isinstance(k, GemmKernel) else k for k in forward.kernels]
    assert all(isinstance(k, LoopKernel) for k in loops)  # no op kernel: nothing is copied
    moved = {n.id for n in graph.nodes() if n.op in ("slice", "pad", "concat")}
    assert not moved & {s for k in loops for s in k.stored}
    guarded = [o for k in loops for s in k.statements for o in s.operands if getattr(o, "paddings", ())]
    assert len(guarded) == 3  # the two parts of the concatenation and the pad


def test_cuts_on_cpu_match_the_reference():
    assert_cpu_matches_reference(gradc.loads(CUTS), batches=(1, 6))


SPLIT = """model parts
input x: f32[N, 6]
a, b, c = split(x, [1, 3, 2], axis=1)
h, g = split(x * 2, 2)
loss L = mean(a * sum(b, axis=1, keepdims=true)) + mean(tanh(c)) + mean(h * g)
"""


def test_split_parts_run_alike_on_cpu_and_reference():
    spec = gradc.loads(SPLIT)
    shapes = {node.name: node.type.shape for node in spec.graph.nodes() if node.name in ("a", "b", "c", "h", "g")}
    assert shapes == {"a": ("N", 1), "b": ("N", 3), "c": ("N", 2), "h": ("N", 3), "g": ("N", 3)}
    assert_cpu_matches_reference(spec, batches=(2,))
