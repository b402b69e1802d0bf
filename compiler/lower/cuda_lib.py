"""The CUDA target's kernel library, through numba-cuda.

- Device functions with the names the op registry's scalar templates call (``sigmoid``, ``gelu``, ...),
  compiled from :mod:`gradc.compiler.lower.scalar_helpers`, the one definition both targets use, so a fused
  loop's code is the same text on both targets.
- The optimizer updates, one thread per element.
- Launch helpers that derive a launch configuration from the shapes of each call: threads per block are a
  power of two no larger than the work (so tiny shapes launch tiny blocks, which also keeps Numba's CUDA
  simulator fast), blocks cover the rest.
- :class:`Workspace`, the device buffers a program reuses from step to step.

Import this module only after deciding to use the CUDA target: importing ``numba.cuda`` reads
``NUMBA_ENABLE_CUDASIM``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda
from numba.core import config

from ..ops.attention import dropout_hash
from .cuda import MAX_THREADS, TILES
from .cuda_simulator import patch_shared_memory_race
from .scalar_helpers import compile_helpers

MAX_BLOCKS = 65535  # every kernel strides over its grid, so a smaller grid still covers the work
# Numba's CUDA simulator runs each thread of a block as a Python thread, one block after another: there a
# launch uses one block of at most 16 threads (tiles of 4), and the grid-stride loops do the rest.
ON_SIMULATOR = bool(config.ENABLE_CUDASIM)
SIMULATOR_THREADS = 16
if ON_SIMULATOR:
    patch_shared_memory_race()


# ---------------------------------------------------------------- device functions for scalar templates
# (written once, in scalar_helpers; kernels that call them are what the cache keeps)

globals().update(compile_helpers(cuda.jit(device=True), __name__))


# ---------------------------------------------------------------- launch configurations


def threads_for(work: int, limit: int = MAX_THREADS) -> int:
    """The smallest power of two that covers ``work``, at most ``limit`` (and, on the simulator, 16)."""
    limit = min(limit, SIMULATOR_THREADS) if ON_SIMULATOR else limit
    threads = 1
    while threads < min(work, limit):
        threads *= 2
    return threads


def blocks_for(work: int, per_block: int) -> int:
    return 1 if ON_SIMULATOR else max(1, min(MAX_BLOCKS, -(-work // per_block)))


def configured(kernel, grid, block):
    """``kernel[grid, block]``, made once per kernel and launch shape: numba-cuda builds a launch configuration
    object on every ``kernel[grid, block]``, about a fifth of its 50-60 us host cost per launch (measured on an
    H200: 64 us a launch through ``kernel[g, b](...)``, 51 us with the configuration reused). The configurations
    hang off the kernel, so they go when it goes."""
    launchers = kernel.__dict__.setdefault("_gradc_launchers", {})
    launcher = launchers.get((grid, block))
    if launcher is None:
        launcher = launchers[(grid, block)] = kernel[grid, block]
    return launcher


def launch_flat(kernel, size: int, *args) -> None:
    """One thread per element."""
    threads = threads_for(size)
    configured(kernel, blocks_for(size, threads), threads)(*args)


def launch_rows(kernel, kept: int, reduced: int, kept_inner: bool, *args) -> None:
    """A reduction kernel: block x spans kept output slots, block y the reduced elements of each slot, and a
    tree over y in shared memory sums them. Kept slots that are the innermost (contiguous) axes get up to 32
    threads in x, so neighbouring threads read neighbouring elements."""
    x = threads_for(kept, 32) if kept_inner else 1
    y = threads_for(reduced, MAX_THREADS // x)
    configured(kernel, blocks_for(kept, x), (x, y))(*args)


def launch_tiled(kernels: dict, rows: int, cols: int, batch: int, *args) -> None:
    """A tiled matrix product: a TILE x TILE block of threads per output tile, the largest tile (4, 8 or 16)
    that the output fills."""
    tile = TILES[0] if ON_SIMULATOR else max([t for t in TILES if t <= max(min(rows, cols), TILES[0])])
    grid = (blocks_for(cols, tile), blocks_for(rows, tile), blocks_for(max(batch, 1), 1))
    configured(kernels[tile], grid, (tile, tile))(*args)


# ---------------------------------------------------------------- buffers


class Workspace:
    """Device buffers by (value, shape): a step reuses the buffers of the step before instead of allocating."""

    def __init__(self):
        self.buffers: dict[tuple, object] = {}

    def array(self, key: int, shape: tuple, dtype) -> object:
        shape = shape or (1,)  # a 0-d value is a 1-element array on the device
        buffer = self.buffers.get((key, shape, dtype))
        if buffer is None:
            buffer = cuda.device_array(shape, dtype=dtype)
            self.buffers[(key, shape, dtype)] = buffer
        return buffer

    def batch_map(self, key: int, operand: tuple, out: tuple) -> object:
        """For each entry of a product's batch dimensions ``out`` (flattened), the flat entry of the operand's
        batch dimensions ``operand`` that it reads, broadcasting as NumPy does; uploaded once per shape."""
        cache_key = ("batch map", key, operand, out)
        indices = self.buffers.get(cache_key)
        if indices is None:
            padded = (1,) * (len(out) - len(operand)) + tuple(operand)
            entries = np.arange(int(np.prod(padded, dtype=np.int64)), dtype=np.int64).reshape(padded)
            indices = cuda.to_device(np.ascontiguousarray(np.broadcast_to(entries, out)).reshape(-1))
            self.buffers[cache_key] = indices
        return indices

    def child(self, key: str) -> Workspace:
        """The workspace of a scan's body (its values are numbered by another graph), kept with this one: every
        step of the scan, and every later call, reuses its buffers."""
        sub = self.buffers.get(("body", key))
        if sub is None:
            sub = self.buffers[("body", key)] = Workspace()
        return sub

    def filled(self, key: int, shape: tuple, dtype, value: float) -> object:
        buffer = self.array(key, shape, dtype)
        flat = buffer.reshape(buffer.size)
        launch_flat(_fill, flat.size, flat, value)
        return buffer


@cuda.jit(cache=True)
def _fill(out, value):
    i = cuda.grid(1)
    while i < out.size:
        out[i] = value
        i += cuda.gridsize(1)


def fill_value(out, value) -> None:
    """out[0] = value (a count known from the shapes, such as a batch size)."""
    _fill[1, 1](out, value)


def flat(array):
    return array.reshape(array.size)


# ---------------------------------------------------------------- optimizer updates, in place, one thread per
# element (formulas in gradc.compiler.optimizers). The hosts' names match the CPU library's routines.


@cuda.jit(cache=True)
def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda.jit(cache=True)
def _momentum(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        v[i] = mu * v[i] - lr * g[i]
        p[i] += v[i]


@cuda.jit(cache=True)
def _nesterov(p, g, v, lr, mu):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        previous = v[i]
        v[i] = mu * v[i] - lr * g[i]
        p[i] += -mu * previous + (1.0 + mu) * v[i]


@cuda.jit(cache=True)
def _adagrad(p, g, s, lr, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        s[i] += g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(s[i]) + eps)


@cuda.jit(cache=True)
def _rmsprop(p, g, s, lr, rho, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        s[i] = rho * s[i] + (1.0 - rho) * g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(s[i]) + eps)


@cuda.jit(cache=True)
def _adam(p, g, m, v, lr, beta1, beta2, eps, correct1, correct2):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        p[i] -= lr * (m[i] / correct1) / (math.sqrt(v[i] / correct2) + eps)


def sgd_update(p, g, lr, t) -> None:
    launch_flat(_sgd, p.size, flat(p), flat(g), lr)


def momentum_update(p, g, v, lr, mu, t) -> None:
    launch_flat(_momentum, p.size, flat(p), flat(g), flat(v), lr, mu)


def nesterov_update(p, g, v, lr, mu, t) -> None:
    launch_flat(_nesterov, p.size, flat(p), flat(g), flat(v), lr, mu)


def adagrad_update(p, g, s, lr, eps, t) -> None:
    launch_flat(_adagrad, p.size, flat(p), flat(g), flat(s), lr, eps)


def rmsprop_update(p, g, s, lr, rho, eps, t) -> None:
    launch_flat(_rmsprop, p.size, flat(p), flat(g), flat(s), lr, rho, eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t) -> None:
    launch_flat(_adam, p.size, flat(p), flat(g), flat(m), flat(v), lr, beta1, beta2, eps,
                1.0 - beta1**t, 1.0 - beta2**t)


# ---------------------------------------------------------------- the training loop's loss, kept on the device


@cuda.jit(cache=True)
def _accumulate_loss(loss, weight, step, totals):
    """totals[0] += loss * weight; totals[1] = the first step whose loss was not finite (0: none)."""
    if cuda.grid(1) == 0:
        value = loss[0]
        totals[0] += value * weight
        if totals[1] == 0 and not math.isfinite(value):
            totals[1] = step
            totals[2] = value


def accumulate_loss(loss, weight: float, step: int, totals) -> None:
    _accumulate_loss[1, 1](loss, weight, step, totals)


# ---------------------------------------------------------------- a gather's gradient


@cuda.jit(cache=True)
def _scatter_add(out, g, indices, v, b):
    """out[i, indices[m], j] += g[i, m, j], one thread per element of g, atomically (indices may repeat)."""
    t = cuda.grid(1)
    count = indices.shape[0]
    while t < g.shape[0] * count * b:  # a grid-stride loop: the launch may have fewer threads than elements
        i = t // (count * b)
        m = (t // b) % count
        j = t % b
        k = indices[m]
        if 0 <= k < v:
            cuda.atomic.add(out, (i, k, j), g[i, m, j])
        t += cuda.gridsize(1)


def scatter_add3(out, g, indices, v, b) -> None:
    """Add the slices of g (3-D: before the axis, the indices' elements, after) into out (zeros, 3-D)."""
    launch_flat(_scatter_add, g.size, out, g, indices, v, b)


# ---------------------------------------------------------------- running sums


@cuda.jit(cache=True)
def _cumsum(out, x):
    """One thread per (before, after) pair runs along the middle axis of the 3-D views."""
    t = cuda.grid(1)
    lanes = x.shape[0] * x.shape[2]
    while t < lanes:
        i = t // x.shape[2]
        j = t % x.shape[2]
        total = x[i, 0, j] - x[i, 0, j]  # zero of x's type
        for k in range(x.shape[1]):
            total += x[i, k, j]
            out[i, k, j] = total
        t += cuda.gridsize(1)


def cumsum3(out, x) -> None:
    launch_flat(_cumsum, x.shape[0] * x.shape[2], out, x)


# ---------------------------------------------------------------- windows (convolution and pooling)


@cuda.jit(cache=True)
def _unwindow(out, g, sh, sw, dh, dw, top, left):
    """col2im as a gather: one thread per image element adds the window elements read from it (no atomics)."""
    t = cuda.grid(1)
    n, c, height, width = out.shape
    kh, kw, oh, ow = g.shape[2], g.shape[3], g.shape[4], g.shape[5]
    while t < n * c * height * width:
        x = t % width
        y = (t // width) % height
        ch = (t // (width * height)) % c
        b = t // (width * height * c)
        for p in range(kh):
            yy = y + top - dh * p
            if yy >= 0 and yy % sh == 0 and yy // sh < oh:
                for q in range(kw):
                    xx = x + left - dw * q
                    if xx >= 0 and xx % sw == 0 and xx // sw < ow:
                        out[b, ch, y, x] += g[b, ch, p, q, yy // sh, xx // sw]
        t += cuda.gridsize(1)


def unwindow6(out, g, sh, sw, dh, dw, top, left) -> None:
    """Add windows g [N, C, KH, KW, OH, OW] back into the image out [N, C, H, W] (zeros)."""
    launch_flat(_unwindow, out.size, out, g, sh, sw, dh, dw, top, left)


CONTRACT_CHUNK = 8  # entries each thread sums before adding into the result: the entries are split among threads


@cuda.jit(cache=True)
def _contract_batch(out, a, b, chunk):
    """out[m, k] += sum over a chunk of entries e and every p of a[e, m, p] * b[e, k, p]; one thread per
    (chunk, m, k), added atomically."""
    t = cuda.grid(1)
    ms, ks = out.shape
    entries, ps = a.shape[0], a.shape[2]
    chunks = (entries + chunk - 1) // chunk
    while t < ms * ks * chunks:
        k = t % ks
        m = (t // ks) % ms
        first = (t // (ms * ks)) * chunk
        last = min(first + chunk, entries)
        total = a[first, m, 0] * b[first, k, 0]
        for p in range(1, ps):
            total += a[first, m, p] * b[first, k, p]
        for e in range(first + 1, last):
            for p in range(ps):
                total += a[e, m, p] * b[e, k, p]
        cuda.atomic.add(out, (m, k), total)
        t += cuda.gridsize(1)


def contract_batch3(out, a, b) -> None:
    """out (zeros, [M, K]) += sum over e of a[e] @ b[e].T, for a [E, M, P] and b [E, K, P]."""
    chunk = CONTRACT_CHUNK if not ON_SIMULATOR else max(a.shape[0], 1)
    chunks = -(-a.shape[0] // chunk)
    launch_flat(_contract_batch, out.size * chunks, out, a, b, chunk)


# ---------------------------------------------------------------- attention (compiler/ops/attention.py)
# The layout of cpu_lib's attention kernels (q [E, T, D], k [E, S, D], v [E, S, Dv], mask [Em, Tm, Sm] and
# ``entries``, the mask's entry per entry e: Workspace.batch_map), one thread per query row (per key row for
# dk and dv) running the online softmax; the row's accumulator is its output row. Dropout (p > 0 and a seed
# >= 0) multiplies weight (i, j) by keep / (1 - p), keep recomputed from the hash of its place.

_dropout_hash = cuda.jit(device=True)(dropout_hash)


@cuda.jit(device=True)
def _attention_score(q, k, mask, e, i, j, me, scale):
    s = 0.0
    for c in range(q.shape[2]):
        s += q[e, i, c] * k[e, j, c]
    return s * scale + mask[me, i if mask.shape[1] > 1 else 0, j if mask.shape[2] > 1 else 0]


@cuda.jit(device=True)
def _kept(seed, dropout, e, i, j):
    """z_ij: keep / (1 - dropout), or 1 without dropout."""
    if dropout == 0.0 or seed[0] < 0:
        return 1.0
    if _dropout_hash(seed[0] & 0xFFFFFFFF, np.int64(e) + (seed[0] >> 32), np.int64(i),
                     np.int64(j)) >= dropout * 4294967296.0:
        return 1.0 / (1.0 - dropout)
    return 0.0


@cuda.jit(device=True)
def _attention_ds(q, k, v, g, lse, delta, mask, seed, e, i, j, me, scale, dropout):
    if lse[e, i] == -math.inf:
        return 0.0
    p = math.exp(_attention_score(q, k, mask, e, i, j, me, scale) - lse[e, i])
    dp = 0.0
    for c in range(v.shape[2]):
        dp += g[e, i, c] * v[e, j, c]
    return p * (_kept(seed, dropout, e, i, j) * dp - delta[e, i])


@cuda.jit(cache=True)
def _attention_forward(out, lse, q, k, v, mask, seed, entries, causal, scale, dropout):
    count, rows, keys, width = q.shape[0], q.shape[1], k.shape[1], v.shape[2]
    for r in range(cuda.grid(1), count * rows, cuda.gridsize(1)):
        e, i = r // rows, r % rows
        me = entries[e]
        top, total = -math.inf, 0.0
        for c in range(width):
            out[e, i, c] = 0.0
        for j in range(min(keys, i + 1) if causal else keys):
            s = _attention_score(q, k, mask, e, i, j, me, scale)
            if s == -math.inf:
                continue
            z = _kept(seed, dropout, e, i, j)
            if s > top:
                factor = math.exp(top - s)
                total = total * factor + 1.0
                for c in range(width):
                    out[e, i, c] = out[e, i, c] * factor + z * v[e, j, c]
                top = s
            else:
                w = math.exp(s - top)
                total += w
                for c in range(width):
                    out[e, i, c] += z * w * v[e, j, c]
        lse[e, i] = top + math.log(total) if total > 0.0 else -math.inf
        if total > 0.0:
            for c in range(width):
                out[e, i, c] /= total


@cuda.jit(cache=True)
def _attention_lse(out, q, k, mask, entries, causal, scale):
    count, rows, keys = q.shape[0], q.shape[1], k.shape[1]
    for r in range(cuda.grid(1), count * rows, cuda.gridsize(1)):
        e, i = r // rows, r % rows
        me = entries[e]
        top, total = -math.inf, 0.0
        for j in range(min(keys, i + 1) if causal else keys):
            s = _attention_score(q, k, mask, e, i, j, me, scale)
            if s == -math.inf:
                continue
            if s > top:
                total = total * math.exp(top - s) + 1.0
                top = s
            else:
                total += math.exp(s - top)
        out[e, i] = top + math.log(total) if total > 0.0 else -math.inf


@cuda.jit(cache=True)
def _attention_dq(out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    count, rows, keys, depth = q.shape[0], q.shape[1], k.shape[1], q.shape[2]
    for r in range(cuda.grid(1), count * rows, cuda.gridsize(1)):
        e, i = r // rows, r % rows
        me = entries[e]
        for c in range(depth):
            out[e, i, c] = 0.0
        for j in range(min(keys, i + 1) if causal else keys):
            ds = _attention_ds(q, k, v, g, lse, delta, mask, seed, e, i, j, me, scale, dropout) * scale
            for c in range(depth):
                out[e, i, c] += ds * k[e, j, c]


@cuda.jit(cache=True)
def _attention_dk(out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    count, rows, keys, depth = q.shape[0], q.shape[1], k.shape[1], q.shape[2]
    for r in range(cuda.grid(1), count * keys, cuda.gridsize(1)):
        e, j = r // keys, r % keys
        me = entries[e]
        for c in range(depth):
            out[e, j, c] = 0.0
        for i in range(j if causal else 0, rows):
            ds = _attention_ds(q, k, v, g, lse, delta, mask, seed, e, i, j, me, scale, dropout) * scale
            for c in range(depth):
                out[e, j, c] += ds * q[e, i, c]


@cuda.jit(cache=True)
def _attention_dv(out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    count, rows, keys, width = q.shape[0], q.shape[1], k.shape[1], g.shape[2]
    for r in range(cuda.grid(1), count * keys, cuda.gridsize(1)):
        e, j = r // keys, r % keys
        me = entries[e]
        for c in range(width):
            out[e, j, c] = 0.0
        for i in range(j if causal else 0, rows):
            if lse[e, i] == -math.inf:
                continue
            p = math.exp(_attention_score(q, k, mask, e, i, j, me, scale) - lse[e, i])
            p *= _kept(seed, dropout, e, i, j)
            for c in range(width):
                out[e, j, c] += p * g[e, i, c]


@cuda.jit(cache=True)
def _attention_ds_all(out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    count, rows, keys = q.shape[0], q.shape[1], k.shape[1]
    for r in range(cuda.grid(1), count * rows * keys, cuda.gridsize(1)):
        e, i, j = r // (rows * keys), (r // keys) % rows, r % keys
        allowed = j <= i or not causal
        out[e, i, j] = (_attention_ds(q, k, v, g, lse, delta, mask, seed, e, i, j, entries[e], scale, dropout)
                        if allowed else 0.0)


def attention_forward3(out, lse, q, k, v, mask, seed, entries, causal, scale, dropout) -> None:
    launch_flat(_attention_forward, q.shape[0] * q.shape[1], out, lse, q, k, v, mask, seed, entries, causal,
                scale, dropout)


def attention_lse3(out, q, k, mask, entries, causal, scale) -> None:
    launch_flat(_attention_lse, q.shape[0] * q.shape[1], out, q, k, mask, entries, causal, scale)


def attention_grads3(dq, dk, dv, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout) -> None:
    """The three gradients, a kernel each: a thread per query row (dq), per key row (dk, dv)."""
    operands = (q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout)
    launch_flat(_attention_dq, q.shape[0] * q.shape[1], dq, *operands)
    launch_flat(_attention_dk, k.shape[0] * k.shape[1], dk, *operands)
    launch_flat(_attention_dv, k.shape[0] * k.shape[1], dv, *operands)


def attention_ds3(out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout) -> None:
    launch_flat(_attention_ds_all, out.size, out, q, k, v, g, lse, delta, mask, seed, entries, causal, scale,
                dropout)
