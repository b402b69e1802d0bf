"""The cpu kernel library's batched helpers that run across Numba's threads (dot_each, dot_pairs, unwindow6,
contract_batch3): each against NumPy, with one thread and with several, and the same bits either way; the
generated code calls them for a convolution's per-example products; a cpu program caps the BLAS at one
thread."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import gradc
from gradc.compiler.lower import cpu_lib

THREAD_COUNTS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS})


@pytest.fixture(params=THREAD_COUNTS, ids=lambda n: f"{n}threads")
def threads(request):
    before = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(before)


def _unwindow_reference(g, height, width, sh, sw, dh, dw, top, left):
    n, c, kh, kw, oh, ow = g.shape
    out = np.zeros((n, c, height, width), g.dtype)
    for p in range(kh):
        for q in range(kw):
            for i in range(oh):
                for j in range(ow):
                    y, x = sh * i + dh * p - top, sw * j + dw * q - left
                    if 0 <= y < height and 0 <= x < width:
                        out[:, :, y, x] += g[:, :, p, q, i, j]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_each_and_dot_pairs_match_numpy(threads, dtype):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 5)).astype(dtype), rng.normal(size=(9, 5, 6)).astype(dtype)
    out = np.empty((9, 7, 6), dtype)
    cpu_lib.dot_each(out, a, b)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5)
    pairs = rng.normal(size=(9, 7, 5)).astype(dtype)
    cpu_lib.dot_pairs(out, pairs, b)
    np.testing.assert_allclose(out, np.matmul(pairs, b), rtol=1e-5)


@pytest.mark.parametrize("case", [
    dict(image=(8, 8), kernel=(3, 3), stride=(1, 1), dilation=(1, 1), pad=(0, 0)),
    dict(image=(9, 7), kernel=(3, 2), stride=(2, 1), dilation=(1, 2), pad=(1, 0)),
    dict(image=(6, 6), kernel=(2, 2), stride=(2, 2), dilation=(1, 1), pad=(1, 1)),
], ids=["plain", "strided-dilated-padded", "pool-like"])
def test_unwindow6_matches_numpy(threads, case):
    (h, w), (kh, kw), (sh, sw), (dh, dw), (top, left) = (case[k] for k in ("image", "kernel", "stride",
                                                                            "dilation", "pad"))
    oh = (h + 2 * top - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * left - dw * (kw - 1) - 1) // sw + 1
    g = np.random.default_rng(2).normal(size=(3, 4, kh, kw, oh, ow))
    got = cpu_lib.unwindow6(g, h, w, sh, sw, dh, dw, top, left)
    np.testing.assert_allclose(got, _unwindow_reference(g, h, w, sh, sw, dh, dw, top, left), rtol=1e-12)


@pytest.mark.parametrize("entries", [1, 3, 8, 21])
def test_contract_batch3_matches_numpy_and_not_the_thread_count(entries):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(entries, 6, 11)).astype(np.float32), rng.normal(size=(entries, 4, 11)).astype(np.float32)
    results = []
    for count in THREAD_COUNTS:
        numba.set_num_threads(count)
        results.append(cpu_lib.contract_batch3(a, b))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_allclose(results[0], np.einsum("emp,ekp->mk", a.astype(np.float64), b), rtol=1e-5, atol=1e-5)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])  # fixed chunks: the same sums in the same order


@pytest.mark.parametrize("shape", [(1024, 64, 256), (700, 48, 40), (300, 8, 8), (3, 5, 7)],
                         ids=["runs", "uneven-runs", "below-the-work", "few-rows"])
def test_dot_rows_match_numpy_and_not_the_thread_count(shape):
    """A product over many rows in runs across threads: NumPy's product, the same bits with any number of
    threads, the transposed form alike; small products take the one-call path."""
    rows, k, m = shape
    rng = np.random.default_rng(rows)
    a, b = rng.normal(size=(rows, k)).astype(np.float32), rng.normal(size=(k, m)).astype(np.float32)
    bits = {}
    for count in THREAD_COUNTS:
        numba.set_num_threads(count)
        bits[count] = (cpu_lib.dot_rows(a, b), cpu_lib.dot_rows_nt(a, np.ascontiguousarray(b.T)),
                       cpu_lib.dot_rows(np.asfortranarray(a), b))
    numba.set_num_threads(max(THREAD_COUNTS))
    for plain, transposed, fortran in bits.values():
        np.testing.assert_allclose(plain, a @ b, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(transposed, plain)
        np.testing.assert_allclose(fortran, plain, rtol=1e-5, atol=1e-5)
    first = bits[THREAD_COUNTS[0]]
    for other in bits.values():
        for x, y in zip(first, other, strict=True):
            np.testing.assert_array_equal(x, y)
    assert cpu_lib._row_runs(a, m) == (4 if shape[0] == 1024 else 2 if shape[0] == 700 else 1)


def test_a_convolution_runs_its_per_example_products_through_the_parallel_helpers():
    source = ("model conv\ninput x: f32[N, 1, 6, 6]\ninput y: i64[N]\n"
              "logits = x -> conv2d(4, 3) -> relu -> flatten -> dense(3)\nloss L = cross_entropy(logits, y)\n")
    program = gradc.compile(gradc.loads(source), cache=False)
    code = program.backend.lowered.source
    assert "dot_each(" in code and "contract_batch3(" in code
    rng = np.random.default_rng(4)
    feeds = {"x": rng.normal(size=(5, 1, 6, 6)).astype(np.float32), "y": rng.integers(0, 3, size=5)}
    reference = gradc.compile(gradc.loads(source), target="reference", params=program.params)
    got, want = program.run(feeds, grad=True), reference.run(feeds, grad=True)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_cpu_program_caps_the_blas_at_one_thread(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    source = "model m\ninput x: f32[N, 3]\nparam w: f32[3, 2] = zeros\noutput y = x @ w\n"
    gradc.compile(gradc.loads(source), cache=False)
    blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(n == 1 for n in blas)


CACHED_CNN = """model cached_cnn
input x: f32[N, 1, 6, 6]
input y: i64[N]
logits = x -> conv2d(2, 3) -> relu -> flatten -> dense(2)
loss L = cross_entropy(logits, y)
"""


def test_a_program_calling_threaded_helpers_loads_from_the_cache_in_a_fresh_process(tmp_path):
    """The second process loads the program (whose entry points call the threaded helpers) from the on-disk
    cache: without Numba's thread pool started first, it died with "Symbol not found: allocate_sched" or a
    segmentation fault (runtime/execution/threads.py, start_numba_threads)."""
    script = (
        "import sys, numpy as np, gradc\n"
        "program = gradc.compile(gradc.loads(sys.argv[1]))\n"
        "x = np.random.default_rng(0).normal(size=(3, 1, 6, 6)).astype(np.float32)\n"
        "loss = program.step({'x': x, 'y': np.array([0, 1, 0])}, lr=0.1)\n"
        "print(float(loss))\n"
    )
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path / "cache")}
    for run in range(2):
        done = subprocess.run([sys.executable, "-c", script, CACHED_CNN], env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"run {run + 1}: exit {done.returncode}\n{done.stderr[-3000:]}"
