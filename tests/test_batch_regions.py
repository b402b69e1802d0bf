"""Batch regions (compiler/batch_regions.py, compiler/lower/cpu_regions.py): which kernels the schedule puts
in a region, and a program whose regions run chunk by chunk across threads computing what the reference
computes, with the same bits on any number of threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import gradc
from gradc.compiler import batch_regions
from gradc.compiler.driver import plan, prepare
from gradc.compiler.schedule import LoopKernel

BENCHMARK_CNN = """model cnn
input x: f32[N, 1, 28, 28]
input y: i64[N]
logits = x -> conv2d(32, 3) -> relu -> max_pool2d(2) -> conv2d(64, 3) -> relu -> max_pool2d(2) -> flatten -> dense(10)
loss L = cross_entropy(logits, y)
"""

# small, with what a region must handle: per-example products, col2im, a max pool's per-example sums, an
# average pool (a mean accumulated in float64, read by the next kernel in the same chunk), bias gradients
# (sums over the batch, in partial sums) and the weights' contraction over the examples
SMALL_CNN = """model small
input x: f32[N, 2, 9, 9]
input y: i64[N]
logits = x -> conv2d(4, 3, padding=1) -> relu -> max_pool2d(2) -> conv2d(5, 2) -> tanh -> avg_pool2d(2)
          -> flatten -> dense(3)
loss L = cross_entropy(logits, y)
"""


def _train_schedule(source: str):
    return plan(prepare(gradc.loads(source).graph)).entries["train_sgd"]


def test_a_cnn_step_is_a_forward_region_and_a_backward_region():
    entry = _train_schedule(BENCHMARK_CNN)
    assert len(entry.regions) == 2
    forward, backward = (entry.kernels[r.start:r.stop] for r in entry.regions)
    ops = lambda kernels: {n.op for k in kernels for n in k.nodes}
    assert {"window", "matmul", "relu", "max", "eq_mask"} <= ops(forward)
    assert {"unwindow", "contract_batch", "matmul"} <= ops(backward)
    between = entry.kernels[entry.regions[0].stop:entry.regions[1].start]
    assert "cross_entropy" in ops(between) or "log" in ops(between)  # the loss runs on the whole batch
    for kernel in (*forward, *backward):  # every loop of a region runs over the batch first
        if isinstance(kernel, LoopKernel):
            assert kernel.domain[0] == "N"


def test_small_models_keep_their_kernels_sequential():
    entry = _train_schedule("model m\ninput x: f32[N, 20]\ninput y: i64[N]\n"
                            "logits = x -> dense(64) -> relu -> dense(3)\nloss L = cross_entropy(logits, y)\n")
    assert entry.regions == ()


@pytest.fixture(scope="module")
def regions_everywhere():
    before = batch_regions.MIN_WORK
    batch_regions.MIN_WORK = 0
    yield
    batch_regions.MIN_WORK = before


@pytest.fixture(scope="module")
def small_program(regions_everywhere):
    program = gradc.compile(gradc.loads(SMALL_CNN), seed=3)
    assert "prange(" in program.backend.lowered.source and "chunk_sum(" in program.backend.lowered.source
    return program


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch, 2, 9, 9)).astype(np.float32), "y": rng.integers(0, 3, size=batch)}


SLOW = pytest.mark.slow


@pytest.mark.parametrize("batch", [7, pytest.param(1, marks=SLOW), pytest.param(33, marks=SLOW)])
# uneven chunks; one chunk; more chunks than threads
def test_a_program_with_regions_matches_the_reference(small_program, batch):
    reference = gradc.compile(gradc.loads(SMALL_CNN), target="reference", params=small_program.params)
    feeds = _feeds(batch)
    got, want = small_program.run(feeds, grad=True), reference.run(feeds, grad=True)
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=2e-4, atol=2e-5, err_msg=f"{name} at batch {batch}")


@pytest.mark.slow
def test_a_step_with_regions_gives_the_same_bits_on_any_number_of_threads(small_program):
    start = {k: v.copy() for k, v in small_program.params.items()}
    results = []
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        small_program.set_params(start)
        numba.set_num_threads(threads)
        loss = small_program.step(_feeds(13, seed=1), lr=0.1)
        results.append((loss, {k: v.copy() for k, v in small_program.params.items()}))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for loss, params in results[1:]:
        assert loss == results[0][0]
        for name, value in params.items():
            np.testing.assert_array_equal(value, results[0][1][name])
