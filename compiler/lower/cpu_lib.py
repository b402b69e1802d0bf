"""The CPU target's kernel library: the scalar helpers that op templates call (sigmoid, gelu, ...), the
allocation and BLAS helpers, and the optimizer updates. All are Numba ``@njit`` functions,
generic over float32/float64, cached on disk, and inlined into the generated program by LLVM."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, objmode, prange

from ..collectives import sum_over_ranks
from ..ops.attention import dropout_hash
from .cpu_vector_math import FAST_FLOAT32, float32_fast
from .scalar_helpers import compile_helpers

jit = njit(cache=True, fastmath=False, nogil=True, error_model="numpy")
# The batched helpers below run their entries across Numba's threads (``prange`` alone: Numba's other parallel
# rewrites stay off). They are compiled once per argument type and cached like the rest of the library, so a
# new program pays nothing for them; the BLAS inside them runs on one thread (runtime/execution/threads.py),
# so there is one pool of threads, Numba's, not two fighting over the cores.
PARALLEL = {"comprehension": False, "reduction": False, "inplace_binop": False, "setitem": False,
            "numpy": False, "stencil": False, "fusion": False, "prange": True}
parallel_jit = njit(cache=True, fastmath=False, nogil=True, error_model="numpy", parallel=PARALLEL)

# ---------------------------------------------------------------- scalar helpers (written once, in scalar_helpers)

globals().update(compile_helpers(jit, __name__))
# exp, tanh and sigmoid of float32 values: vectorizable versions (cpu_vector_math); other dtypes keep the helpers
globals().update({name: float32_fast(name, fast, globals()[name], __name__) for name, fast in FAST_FLOAT32.items()})


@jit
def sgd_update(p, g, lr, t):
    """p -= lr * g, in place, for parameters of any rank (p is C-contiguous)."""
    flat_p = p.reshape(p.size)
    flat_g = np.ascontiguousarray(g).reshape(g.size)
    for i in range(flat_p.size):
        flat_p[i] -= lr * flat_g[i]


# A product of a few rows by a large matrix (a recurrence's step over a chunk of the batch, h @ W^T with W
# [4H, H]) runs as the transposed product, (W @ h^T)^T, then copied back: OpenBLAS spends most of a small
# product repacking the large operand, much less in that orientation. Measured with one BLAS thread (2-core AMD
# EPYC): [16, 128] @ [128, 512] 63 -> 36 us and [16, 512] @ [512, 128] 61 -> 51 us; from 32 rows on, the
# plain product is as fast or faster (the copy's cost grows), hence the threshold.
SMALL_PRODUCT_ROWS = 16
SMALL_PRODUCT_OTHER = 16_384  # elements of the other operand, at least


@jit
def _few_rows(a, b):
    return a.ndim == 2 and a.shape[0] <= SMALL_PRODUCT_ROWS and b.size >= SMALL_PRODUCT_OTHER


@jit
def dot(a, b):
    """BLAS through np.dot, compiled once per operand layout and kept in the cache, so a new program in a
    new process loads it instead of typing np.dot again; a few rows by a large matrix transposed (above)."""
    if b.ndim == 2 and _few_rows(a, b):
        return np.ascontiguousarray(np.dot(b.T, a.T).T)
    return np.dot(a, b)


@jit
def dot_nt(a, b):
    """a @ b.T: BLAS reads b transposed (an F-ordered view), nothing is copied; a few rows by a large matrix
    transposed (above)."""
    if _few_rows(a, b):
        return np.ascontiguousarray(np.dot(b, a.T).T)
    return np.dot(a, b.T)


@jit
def dot_tn(a, b):
    """a.T @ b, likewise."""
    return np.dot(a.T, b)


# A large product over many rows (a sequence model's projections, [N * T, d] @ [d, h]) splits a's rows into
# runs, each run's rows of the result one BLAS call, the runs across Numba's threads (the BLAS itself runs on
# one: runtime/execution/threads.py). The rows alone decide the runs, not the thread count, and each result
# row is one BLAS product of its own row, so results do not depend on the number of threads. Measured on the
# transformer benchmark's [1024, 64] @ [64, 256] (2-core AMD EPYC, kernel_times): 0.45-0.50 -> 0.26-0.33 ms.
# Entry points call these; a scan's body, itself run across threads, keeps the plain ``dot``.
DOT_ROWS_PER_RUN = 256
PARALLEL_DOT_WORK = 1 << 20  # multiply-adds (rows x k x m) below which one call is faster


@jit
def _row_runs(a, columns):
    """How many runs a product of a's rows by ``columns`` columns splits into (1: one call)."""
    rows = a.shape[0]
    if a.ndim != 2 or rows * a.shape[1] * columns < PARALLEL_DOT_WORK:
        return 1
    return max(1, min(rows // DOT_ROWS_PER_RUN, CONTRACT_CHUNKS))


@parallel_jit
def dot_rows(a, b):
    """a @ b (see above)."""
    runs = _row_runs(a, b.shape[-1]) if b.ndim == 2 else 1
    if runs == 1 or not a.flags.c_contiguous:  # a's rows apart in memory: BLAS reads it whole, in one call
        return dot(a, b)
    rows = a.shape[0]
    out = np.empty((rows, b.shape[1]), dtype=a.dtype)
    for run in prange(runs):
        lo, hi = run * rows // runs, (run + 1) * rows // runs
        np.dot(a[lo:hi], b, out[lo:hi])
    return out


@parallel_jit
def dot_rows_nt(a, b):
    """a @ b.T (see above)."""
    runs = _row_runs(a, b.shape[0])
    if runs == 1 or not a.flags.c_contiguous:
        return dot_nt(a, b)
    rows = a.shape[0]
    out = np.empty((rows, b.shape[0]), dtype=a.dtype)
    for run in prange(runs):
        lo, hi = run * rows // runs, (run + 1) * rows // runs
        np.dot(a[lo:hi], b.T, out[lo:hi])
    return out


@jit
def dot_into(out, a, b):
    """out[...] = np.dot(a, b) for a C-contiguous ``out`` (one entry of a batched product). Written as a copy
    loop: a slice assignment compiles Numba's shape-mismatch message (~4 s) into every program using it."""
    r = np.dot(a, b)
    flat_out = out.reshape(out.size)
    flat_r = r.reshape(r.size)
    for i in range(flat_r.size):
        flat_out[i] = flat_r[i]


@parallel_jit
def dot_each(out, a, b):
    """out[q] = a @ b[q] for every q (a layer's weights times each example's columns), in parallel."""
    for q in prange(b.shape[0]):
        dot_into(out[q], a, b[q])


@parallel_jit
def dot_pairs(out, a, b):
    """out[q] = a[q] @ b[q] for every q, in parallel."""
    for q in prange(b.shape[0]):
        dot_into(out[q], a[q], b[q])


# ---------------------------------------------------------------- array helpers
# The generated code calls these instead of np.empty, .reshape, .astype, ...: each is typed and compiled
# once per argument type and kept in the cache, so compiling a new program does not type them again.


@jit
def empty_f32(shape):
    return np.empty(shape, np.float32)


@jit
def empty_f64(shape):
    return np.empty(shape, np.float64)


@jit
def empty_i32(shape):
    return np.empty(shape, np.int32)


@jit
def empty_i64(shape):
    return np.empty(shape, np.int64)


@jit
def empty_bool(shape):
    return np.empty(shape, np.bool_)


@jit
def zeros_f64(shape):
    return np.zeros(shape, np.float64)


@jit
def lowest_f64(shape):
    return np.full(shape, -np.inf)


@jit
def zeros_f32(shape):
    return np.zeros(shape, np.float32)


@jit
def lowest_f32(shape):
    return np.full(shape, -np.inf, np.float32)


@jit
def to_f32(a):
    return a.astype(np.float32)


@jit
def to_f64(a):
    return a.astype(np.float64)


@jit
def to_i32(a):
    return a.astype(np.int32)


@jit
def to_i64(a):
    return a.astype(np.int64)


@jit
def reshape(a, shape):
    return a.reshape(shape)


@jit
def transpose2(a):
    return a.T


@jit
def item(a):
    return a.item()


# ---------------------------------------------------------------- optimizer updates (in place; see
# gradc.compiler.optimizers for the formulas). p is C-contiguous; g may be any layout.


@jit
def momentum_update(p, g, v, lr, mu, t):
    fp, fv, fg = p.reshape(p.size), v.reshape(v.size), np.ascontiguousarray(g).reshape(g.size)
    for i in range(fp.size):
        fv[i] = mu * fv[i] - lr * fg[i]
        fp[i] += fv[i]


@jit
def nesterov_update(p, g, v, lr, mu, t):
    fp, fv, fg = p.reshape(p.size), v.reshape(v.size), np.ascontiguousarray(g).reshape(g.size)
    for i in range(fp.size):
        previous = fv[i]
        fv[i] = mu * fv[i] - lr * fg[i]
        fp[i] += -mu * previous + (1.0 + mu) * fv[i]


@jit
def adagrad_update(p, g, s, lr, eps, t):
    fp, fs, fg = p.reshape(p.size), s.reshape(s.size), np.ascontiguousarray(g).reshape(g.size)
    for i in range(fp.size):
        fs[i] += fg[i] * fg[i]
        fp[i] -= lr * fg[i] / (math.sqrt(fs[i]) + eps)


@jit
def rmsprop_update(p, g, s, lr, rho, eps, t):
    fp, fs, fg = p.reshape(p.size), s.reshape(s.size), np.ascontiguousarray(g).reshape(g.size)
    for i in range(fp.size):
        fs[i] = rho * fs[i] + (1.0 - rho) * fg[i] * fg[i]
        fp[i] -= lr * fg[i] / (math.sqrt(fs[i]) + eps)


@jit
def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    fp, fm, fv = p.reshape(p.size), m.reshape(m.size), v.reshape(v.size)
    fg = np.ascontiguousarray(g).reshape(g.size)
    correct1 = 1.0 - beta1**t
    correct2 = 1.0 - beta2**t
    for i in range(fp.size):
        fm[i] = beta1 * fm[i] + (1.0 - beta1) * fg[i]
        fv[i] = beta2 * fv[i] + (1.0 - beta2) * fg[i] * fg[i]
        fp[i] -= lr * (fm[i] / correct1) / (math.sqrt(fv[i] / correct2) + eps)


@jit
def scatter_add3(g, indices, a, v, b):
    """A gather's gradient on 3-D views: out[i, indices[m], j] += g[i, m, j] for every m, so repeated indices add
    up; an index outside 0..v-1 adds nothing (it read 0)."""
    out = np.zeros((a, v, b), dtype=g.dtype)
    for i in range(a):
        for m in range(indices.shape[0]):
            k = indices[m]
            if 0 <= k < v:
                for j in range(b):
                    out[i, k, j] += g[i, m, j]
    return out


@njit(cache=True, error_model="numpy")
def ranks_sum(x):
    """A copy of ``x`` summed over the ranks of a data-parallel world: a call back into Python (object mode)
    to the installed exchange (compiler/collectives.py); the copy itself in one process."""
    out = np.ascontiguousarray(x).copy()
    with objmode():
        sum_over_ranks(out)
    return out


@jit
def cumsum3(x):
    """The running sum along the middle axis of a 3-D view (before the axis, the axis, after it)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[2]):
            total = x.dtype.type(0)
            for k in range(x.shape[1]):
                total += x[i, k, j]
                out[i, k, j] = total
    return out


# ---------------------------------------------------------------- windows (convolution and pooling)


@jit
def run_time_one(a):
    """1, computed from an argument so that LLVM cannot fold it: sizes multiplied by it are run-time values
    to the optimizer (see cpu._Function._shape_number_lines)."""
    return np.int64(1) if a.size >= 0 else np.int64(0)


@jit
def unwindow_plane(image, g, sh, sw, dh, dw, top, left):
    """One (example, channel) plane of col2im: ``image`` [H, W] = the sum of g [KH, KW, OH, OW] at the places
    window() read; reads that fell in the padding add nothing. The innermost loop runs along a row of g
    (contiguous) and of the image (stride sw)."""
    height, width = image.shape
    kh, kw, oh, ow = g.shape
    for y in range(height):
        for x in range(width):
            image[y, x] = 0
    for p in range(kh):
        for q in range(kw):
            for i in range(oh):
                y = sh * i + dh * p - top
                if 0 <= y < height:
                    for j in range(ow):
                        x = sw * j + dw * q - left
                        if 0 <= x < width:
                            image[y, x] += g[p, q, i, j]


@jit
def unwindow_into(out, g, sh, sw, dh, dw, top, left):
    """col2im of one example: out [C, H, W] from g [C, KH, KW, OH, OW] (a batch region's chunk calls it)."""
    for ch in range(g.shape[0]):
        unwindow_plane(out[ch], g[ch], sh, sw, dh, dw, top, left)


@parallel_jit
def unwindow6(g, height, width, sh, sw, dh, dw, top, left):
    """window()'s transpose (col2im): g [N, C, KH, KW, OH, OW] added back into an image [N, C, height, width];
    the (example, channel) planes are independent and run in parallel."""
    n, c = g.shape[0], g.shape[1]
    out = np.empty((n, c, height, width), dtype=g.dtype)
    for plane in prange(n * c):
        b, ch = plane // c, plane % c
        unwindow_plane(out[b, ch], g[b, ch], sh, sw, dh, dw, top, left)
    return out


CONTRACT_CHUNKS = 8  # a fixed number of partial sums: the result does not depend on the number of threads


@parallel_jit
def contract_batch3(a, b):
    """sum over e of a[e] @ b[e].T, for a [E, M, P] and b [E, K, P] (a weight's gradient summed over the
    examples): the entries split into at most CONTRACT_CHUNKS contiguous runs, each run's products added up
    in parallel (one BLAS product per entry), then the runs' sums added in order."""
    entries, m, k = a.shape[0], a.shape[1], b.shape[1]
    chunks = max(1, min(entries, CONTRACT_CHUNKS))
    parts = np.zeros((chunks, m * k), dtype=a.dtype)
    for chunk in prange(chunks):
        part = parts[chunk]
        for e in range(chunk * entries // chunks, (chunk + 1) * entries // chunks):
            product = np.dot(a[e], b[e].T)
            flat_product = product.reshape(m * k)
            for i in range(m * k):
                part[i] += flat_product[i]
    out = np.zeros((m, k), dtype=a.dtype)
    flat = out.reshape(m * k)
    for chunk in range(chunks):
        for i in range(m * k):
            flat[i] += parts[chunk, i]
    return out


ROWS_PER_CHUNK = 128  # contract_rows2: fewer rows than this in a run are not worth a thread


@parallel_jit
def contract_rows2(a, b):
    """a.T @ b for a [R, M] and b [R, K] (a weight's gradient over every step and example): the rows split into
    at most CONTRACT_CHUNKS runs of at least ROWS_PER_CHUNK (the rows alone decide them, not the thread count),
    each run's product one BLAS call, the runs in parallel, then their products added in order."""
    rows, m, k = a.shape[0], a.shape[1], b.shape[1]
    chunks = max(1, min(rows // ROWS_PER_CHUNK, CONTRACT_CHUNKS))
    if chunks == 1:
        return np.dot(a.T, b)
    parts = np.empty((chunks, m, k), dtype=a.dtype)
    for chunk in prange(chunks):
        lo, hi = chunk * rows // chunks, (chunk + 1) * rows // chunks
        parts[chunk] = np.dot(a[lo:hi].T, b[lo:hi])
    return chunk_sum(parts)


@jit
def add_product_nt(out, a, b):
    """out += a @ b.T, for a C-contiguous ``out`` (one example's share of a weight's gradient, added into its
    chunk's partial sum in a batch region)."""
    product = np.dot(a, b.T)
    flat_out = out.reshape(out.size)
    flat_product = product.reshape(product.size)
    for i in range(flat_out.size):
        flat_out[i] += flat_product[i]


EXAMPLES_PER_CHUNK = 4  # a batch region's chunk: a few examples, whose values stay in the core's cache
MAX_CHUNKS = 64  # and at most this many chunks, which bounds the partial sums' memory


@jit
def chunk_count(batch):
    """How many chunks a batch region cuts a batch of ``batch`` examples into: a function of the batch alone,
    not of the number of threads, so the partial sums, and the results, are the same on any machine."""
    return max(1, min(MAX_CHUNKS, (batch + EXAMPLES_PER_CHUNK - 1) // EXAMPLES_PER_CHUNK))


SCAN_EXAMPLES_PER_CHUNK = 16  # a chunked scan's chunk: enough rows for the step's products to run well
SCAN_MAX_CHUNKS = 8


@jit
def scan_chunk_count(batch):
    """How many chunks a scan that works example by example (compiler/scan_chunks.py) cuts a batch of
    ``batch`` examples into: a function of the batch alone, like :func:`chunk_count`."""
    return max(1, min(SCAN_MAX_CHUNKS, batch // SCAN_EXAMPLES_PER_CHUNK))


@jit
def chunk_sum(partial):
    """The sum over axis 0 of a batch region's partial sums [chunks, ...], added in chunk order."""
    out = np.zeros(partial.shape[1:], dtype=partial.dtype)
    flat_out = out.reshape(out.size)
    rows = partial.reshape((partial.shape[0], out.size))
    for chunk in range(rows.shape[0]):
        for i in range(flat_out.size):
            flat_out[i] += rows[chunk, i]
    return out


@jit
def put_rows(out, lo, rows):
    """out[lo:lo + len(rows)] = rows for a C-contiguous ``out`` and ``rows`` of its row shape: a chunk's rows of a
    result (a chunked scan's step). A copy loop, not a slice assignment (see :func:`dot_into`)."""
    width = out.size // max(out.shape[0], 1)
    flat_out = out.reshape(out.size)
    flat_rows = rows.reshape(rows.size)
    start = lo * width
    for i in range(rows.size):
        flat_out[start + i] = flat_rows[i]


@jit
def rows_into(out, accumulator, lo, hi, divisor):
    """out[lo:hi] = accumulator[lo:hi] / divisor in out's dtype: a chunk's rows of a reduction accumulated in
    float64 (in a batch region, where the chunk's next kernels read them)."""
    width = out.size // max(out.shape[0], 1)
    flat_out = out.reshape((out.shape[0], width))
    flat_accumulator = accumulator.reshape((accumulator.shape[0], width))
    for row in range(lo, hi):
        for i in range(width):
            flat_out[row, i] = flat_accumulator[row, i] / divisor


# ---------------------------------------------------------------- attention (compiler/ops/attention.py)
# q [E, T, D], k [E, S, D], v [E, S, Dv] (E: the leading dimensions flattened), the mask viewed as
# [Em, Tm, Sm] (Tm in {1, T}, Sm in {1, S}) and ``entries[e]``, the mask's entry for entry e. FlashAttention's
# tiling: each parallel iteration takes one entry's block of ATTENTION_BLOCK query rows (key rows, for dk and
# dv) and runs over the other side's blocks; a tile's scores [block, block] are one BLAS product and never
# leave the cache; the forward keeps a running maximum and sum per row (the online softmax), rescaling its
# accumulator when the maximum grows. The [T, S] scores are never stored (but in attention_ds3, a mask's
# gradient, which is that array).

# Dropout on the weights (``dropout`` p > 0 and a seed >= 0, in training): each weight of the tile is
# multiplied by keep / (1 - p), keep recomputed from a hash of (seed, e, i, j) wherever it is needed.

ATTENTION_BLOCK = 64
_exp = globals()["exp"]  # the scalar helper: float32's vectorizable exp (cpu_vector_math), math.exp otherwise
_dropout_hash = jit(dropout_hash)


@jit
def attention_entries(lead, mask_lead):
    """For each entry of the leading dimensions ``lead`` (an int64 array), the flat index of the mask's entry
    that broadcasts to it (``mask_lead``: the mask's leading dimensions, right-aligned, 1 where it broadcasts)."""
    count = 1
    for d in lead:
        count *= d
    entries = np.zeros(count, dtype=np.int64)
    offset = lead.size - mask_lead.size
    for e in range(count):
        rest, index, stride = e, 0, 1
        for a in range(lead.size - 1, -1, -1):
            position = rest % lead[a]
            rest //= lead[a]
            if a >= offset:
                size = mask_lead[a - offset]
                if size != 1:
                    index += position * stride
                stride *= size
        entries[e] = index
    return entries


@jit
def _attention_scores(q, k, mask, e, me, i0, i1, j0, j1, causal, scale):
    """The tile of scores [i1 - i0, j1 - j0]: scale * q k^T + mask, -inf after the diagonal when causal (in
    the queries' dtype; each row's loop without branches, so that it vectorizes)."""
    s = np.dot(q[e, i0:i1], k[e, j0:j1].T)
    factor = q.dtype.type(scale)
    cols = j1 - j0
    rows_vary, cols_vary = mask.shape[1] > 1, mask.shape[2] > 1
    for a in range(i1 - i0):
        row = mask[me, i0 + a if rows_vary else 0]
        if cols_vary:
            for b in range(cols):
                s[a, b] = s[a, b] * factor + row[j0 + b]
        else:
            shift = row[0]
            for b in range(cols):
                s[a, b] = s[a, b] * factor + shift
        if causal:
            for b in range(max(0, i0 + a - j0 + 1), cols):
                s[a, b] = -np.inf
    return s


@jit
def _attention_probabilities(s, lse, e, i0):
    """exp(s - lse) in place, row by row; 0 in a row that sees no key."""
    for a in range(s.shape[0]):
        top = lse[e, i0 + a]
        if top == -np.inf:
            s[a] = 0.0
            continue
        for b in range(s.shape[1]):
            s[a, b] = _exp(s[a, b] - top)
    return s


@jit
def _drop(w, seed, dropout, e, i0, j0):
    """The tile w [rows i0.., keys j0..] times keep / (1 - dropout), in place; w itself without dropout."""
    if dropout == 0.0 or seed[0] < 0:
        return w
    threshold, factor = dropout * 4294967296.0, w.dtype.type(1.0 / (1.0 - dropout))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            kept = _dropout_hash(seed[0] & 0xFFFFFFFF, np.int64(e) + (seed[0] >> 32), np.int64(i0 + a),
                                 np.int64(j0 + b)) >= threshold
            w[a, b] = w[a, b] * factor if kept else 0.0
    return w


@jit
def _attention_score_gradient(q, k, v, g, lse, delta, mask, seed, e, me, i0, i1, j0, j1, causal, scale, dropout):
    """ds = p * (z * (g v^T) - delta) for one tile (the scores recomputed; z: dropout's weights)."""
    p = _attention_probabilities(_attention_scores(q, k, mask, e, me, i0, i1, j0, j1, causal, scale), lse, e, i0)
    ds = _drop(np.dot(g[e, i0:i1], v[e, j0:j1].T), seed, dropout, e, i0, j0)
    for a in range(i1 - i0):
        d = delta[e, i0 + a]
        for b in range(j1 - j0):
            ds[a, b] = p[a, b] * (ds[a, b] - d)
    return ds


@jit
def _add_into(out, x):
    """out += x for 2-d arrays, as a plain loop (Numba's ``+=`` on an array slice costs as much as the BLAS
    product it adds: measured in attention_grads3, 1.37 -> 0.92 ms)."""
    for a in range(x.shape[0]):
        for b in range(x.shape[1]):
            out[a, b] += x[a, b]


@jit
def _online_softmax(s, top, total):
    """The online softmax's step over one tile of scores: each row's running maximum ``top`` and sum
    ``total`` updated, the tile's scores replaced by exp(s - the new maximum) (zeros in a row that has seen
    no key yet), and each row's factor exp(old maximum - new maximum) returned, to rescale what was summed
    before. The exps in a loop apart from the sum, so that they vectorize."""
    factors = np.ones(s.shape[0])
    for a in range(s.shape[0]):
        new_top = max(top[a], np.max(s[a]))
        if new_top == -np.inf:
            s[a] = 0.0
            continue
        shift = s.dtype.type(new_top)
        for b in range(s.shape[1]):
            s[a, b] = _exp(s[a, b] - shift)
        row_sum = 0.0
        for b in range(s.shape[1]):
            row_sum += s[a, b]
        factors[a] = math.exp(top[a] - new_top)
        total[a] = total[a] * factors[a] + row_sum
        top[a] = new_top
    return factors


@jit
def _key_stop(keys, i1, causal):
    return min(keys, i1) if causal else keys


@parallel_jit
def attention_forward3(q, k, v, mask, seed, entries, causal, scale, dropout):
    """softmax(scale q k^T + mask) v, tile by tile (see above), and each row's log-sum-exp (the gradient's);
    a row that sees no key is zeros, its log-sum-exp -inf."""
    count, rows, keys, width = q.shape[0], q.shape[1], k.shape[1], v.shape[2]
    blocks = (rows + ATTENTION_BLOCK - 1) // ATTENTION_BLOCK
    out = np.zeros((count, rows, width), dtype=q.dtype)
    lse = np.empty((count, rows), dtype=q.dtype)
    for r in prange(count * blocks):
        e, i0 = r // blocks, (r % blocks) * ATTENTION_BLOCK
        i1 = min(rows, i0 + ATTENTION_BLOCK)
        me = entries[e]
        top = np.full(i1 - i0, -np.inf)
        total = np.zeros(i1 - i0)
        acc = np.zeros((i1 - i0, width), dtype=q.dtype)
        for j0 in range(0, _key_stop(keys, i1, causal), ATTENTION_BLOCK):
            j1 = min(keys, j0 + ATTENTION_BLOCK)
            s = _attention_scores(q, k, mask, e, me, i0, i1, j0, j1, causal, scale)
            factors = _online_softmax(s, top, total)
            for a in range(i1 - i0):
                for c in range(width):
                    acc[a, c] *= factors[a]
            acc += np.dot(_drop(s, seed, dropout, e, i0, j0), v[e, j0:j1])
        for a in range(i1 - i0):
            lse[e, i0 + a] = top[a] + math.log(total[a]) if total[a] > 0.0 else -np.inf
            if total[a] > 0.0:
                for c in range(width):
                    out[e, i0 + a, c] = acc[a, c] / total[a]
    return out, lse


@parallel_jit
def attention_lse3(q, k, mask, entries, causal, scale):
    """Each query row's log-sum-exp of its scores, -inf where it sees no key."""
    count, rows, keys = q.shape[0], q.shape[1], k.shape[1]
    blocks = (rows + ATTENTION_BLOCK - 1) // ATTENTION_BLOCK
    out = np.empty((count, rows), dtype=q.dtype)
    for r in prange(count * blocks):
        e, i0 = r // blocks, (r % blocks) * ATTENTION_BLOCK
        i1 = min(rows, i0 + ATTENTION_BLOCK)
        me = entries[e]
        top = np.full(i1 - i0, -np.inf)
        total = np.zeros(i1 - i0)
        for j0 in range(0, _key_stop(keys, i1, causal), ATTENTION_BLOCK):
            j1 = min(keys, j0 + ATTENTION_BLOCK)
            _online_softmax(_attention_scores(q, k, mask, e, me, i0, i1, j0, j1, causal, scale), top, total)
        for a in range(i1 - i0):
            out[e, i0 + a] = top[a] + math.log(total[a]) if total[a] > 0.0 else -np.inf
    return out


@parallel_jit
def attention_grads3(q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    """The gradients of q, k and v, FlashAttention-2's backward pass: each tile's probabilities recomputed
    once, giving the tile's share of all three. Entries run in parallel; within an entry, key blocks in turn,
    each against the query blocks it sees, so every sum runs in one order whatever the number of threads."""
    count, rows, keys = q.shape[0], q.shape[1], k.shape[1]
    dq = np.zeros(q.shape, dtype=q.dtype)
    dk = np.zeros(k.shape, dtype=k.dtype)
    dv = np.zeros((count, keys, g.shape[2]), dtype=q.dtype)
    factor = q.dtype.type(scale)
    dropping = dropout > 0.0 and seed[0] >= 0
    for e in prange(count):
        me = entries[e]
        for j0 in range(0, keys, ATTENTION_BLOCK):
            j1 = min(keys, j0 + ATTENTION_BLOCK)
            first = (j0 // ATTENTION_BLOCK) * ATTENTION_BLOCK if causal else 0
            for i0 in range(min(first, rows), rows, ATTENTION_BLOCK):
                i1 = min(rows, i0 + ATTENTION_BLOCK)
                p = _attention_probabilities(_attention_scores(q, k, mask, e, me, i0, i1, j0, j1, causal, scale),
                                             lse, e, i0)
                dp = _drop(np.dot(g[e, i0:i1], v[e, j0:j1].T), seed, dropout, e, i0, j0)
                kept = _drop(p.copy(), seed, dropout, e, i0, j0) if dropping else p
                _add_into(dv[e, j0:j1], np.dot(kept.T, g[e, i0:i1]))
                for a in range(i1 - i0):
                    d = delta[e, i0 + a]
                    for b in range(j1 - j0):
                        p[a, b] = p[a, b] * (dp[a, b] - d) * factor  # the scores' gradient, scaled
                _add_into(dk[e, j0:j1], np.dot(p.T, q[e, i0:i1]))
                _add_into(dq[e, i0:i1], np.dot(p, k[e, j0:j1]))
    return dq, dk, dv


@parallel_jit
def attention_ds3(q, k, v, g, lse, delta, mask, seed, entries, causal, scale, dropout):
    """The scores' gradient [E, T, S] (a mask's gradient); 0 for the keys a causal row leaves out."""
    count, rows, keys = q.shape[0], q.shape[1], k.shape[1]
    blocks = (rows + ATTENTION_BLOCK - 1) // ATTENTION_BLOCK
    out = np.zeros((count, rows, keys), dtype=q.dtype)
    for r in prange(count * blocks):
        e, i0 = r // blocks, (r % blocks) * ATTENTION_BLOCK
        i1 = min(rows, i0 + ATTENTION_BLOCK)
        for j0 in range(0, _key_stop(keys, i1, causal), ATTENTION_BLOCK):
            j1 = min(keys, j0 + ATTENTION_BLOCK)
            out[e, i0:i1, j0:j1] = _attention_score_gradient(q, k, v, g, lse, delta, mask, seed, e, entries[e],
                                                             i0, i1, j0, j1, causal, scale, dropout)
    return out
