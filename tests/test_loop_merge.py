"""Merged loops (compiler/loop_merge.py): which loop kernels run their trailing axes as one loop, and programs
whose loops are merged computing what the reference computes."""

from __future__ import annotations

import numpy as np

import gradc
from gradc.compiler.driver import plan, prepare
from gradc.compiler.loop_merge import merge_start
from gradc.compiler.schedule import LoopKernel

# a bias over channels (read at i1 alone), a sum over the spatial axes (every merged axis reduced), a sum
# over the last axis only (not mergeable), a shifted read (a slice: not mergeable) and a window (im2col)
SOURCE = """model merges
input x: f32[N, 3, 6, 5]
param b: f32[3, 1, 1] = 0.1
param w: f32[4, 3, 2, 2] = 0.2
h = tanh(x + b) * x
s = sum(h, axis=[2, 3])
r = sum(h * h, axis=3)
c = h[:, :, 1:, :] * 2
loss L = mean(s^2) + mean(r) + mean(c^2) + mean(conv2d(x, w)^2)
"""


def _loops(source: str, entry: str = "train_sgd") -> list[tuple[LoopKernel, int | None]]:
    schedule = plan(prepare(gradc.loads(source).graph))
    shape_of = lambda v: schedule.graph.node(v).type.shape
    return [(k, merge_start(k, shape_of)) for k in schedule.entries[entry].kernels if isinstance(k, LoopKernel)]


def _ops(kernel: LoopKernel) -> set[str]:
    return {n.op for n in kernel.nodes}


def _forward_loop(body: str) -> tuple[LoopKernel, int | None]:
    """The forward loop over the image of ``loss L = <body>`` on x: f32[N, 3, 6, 5] and b: f32[3, 1, 1]."""
    source = f"model m\ninput x: f32[N, 3, 6, 5]\nparam b: f32[3, 1, 1] = 0.1\nloss L = {body}\n"
    return next((k, m) for k, m in _loops(source, "forward") if k.domain[1:] in ((3, 6, 5), (3, 5, 5)))


def test_elementwise_loops_merge_their_trailing_axes():
    assert _forward_loop("mean(tanh(x) * x)")[1] == 1  # [N, 3 * 6 * 5]
    assert _forward_loop("mean(tanh(x + b) * x)")[1] == 2  # b is read at the channel: [N, 3, 6 * 5]
    assert _forward_loop("mean(sum(tanh(x + b), axis=[2, 3])^2)")[1] == 2  # the image summed, channels kept


def test_partial_sums_and_shifted_reads_keep_the_axes_apart():
    assert _forward_loop("mean(sum(x * x, axis=3))")[1] is None  # the last axis summed alone
    assert _forward_loop("mean(x[:, :, 1:, :] * 2)")[1] is None  # a slice reads at i2 + 1
    assert _forward_loop("mean(x * x[:, :, :, ::-1])")[1] is None  # a reversed read


def test_merged_loops_match_the_reference():
    spec = gradc.loads(SOURCE)
    cpu = gradc.compile(spec, cache=False)
    assert " * n" in cpu.backend.lowered.source  # some loop runs over merged axes
    reference = gradc.compile(spec, target="reference")
    for batch in (1, 5):
        feeds = {"x": np.random.default_rng(batch).normal(size=(batch, 3, 6, 5)).astype(np.float32)}
        want, got = reference.run(feeds, grad=True), cpu.run(feeds, grad=True)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=2e-5, atol=1e-6, err_msg=name)
