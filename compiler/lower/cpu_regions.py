"""The cpu rendering of a batch region (``compiler/batch_regions.py``): the batch cut into chunks of a few
examples, the chunks run across Numba's threads by one ``prange`` loop, and every kernel of the region run
for the chunk's examples, in order, inside it::

    nck0 = chunk_count(nb)              # the batch alone decides the chunks, not the thread count
    v7 = empty_f32(...)                 # every kernel's allocations and partial sums, before the loop
    for ck0 in prange(nck0):
        lo0 = ck0 * nb // nck0
        hi0 = (ck0 + 1) * nb // nck0
        for i0 in range(lo0, hi0):      # each kernel in turn, over the chunk's examples
            ...
    v45 = to_f32(chunk_sum(k39_a1))     # after it: the sums over the batch, chunk by chunk in order

A region costs 10-15 s of compile time: Numba's parfor passes compile the loop's body again as a function
of its own. Tried and measured on the CNN benchmark's training step (cold compile): the loop in the entry
point, 26 s (10 s without regions); the chunk's work as a function of its own called from a small parallel
function, 45 s (Numba links a called function into its caller and optimizes it again there); one
``prange`` per kernel instead of per region, +1.5 s a kernel. Hence one parallel loop per region, written in
the entry point, and ``batch_regions.MIN_WORK`` keeping regions to models whose work per example pays for
it. The BLAS runs on one thread inside it (runtime/execution/threads.py): one pool of threads, Numba's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..graph import Node
from ..schedule import GemmKernel, LoopKernel, OpKernel, ScheduledKernel
from .common import LoweringError, kernel_heading

Parts = tuple[list[str], list[str], list[str]]  # lines before the chunks, in each chunk, after them


@dataclass(frozen=True)
class RegionNames:
    chunk: str  # the chunk's number, the prange index
    chunks: str  # how many chunks
    lo: str  # the chunk's first example
    hi: str  # one past its last


def write_region(f, kernels: tuple[ScheduledKernel, ...], number: int) -> None:
    """Write the region's kernels into ``f`` (a cpu entry-point writer) as one parallel loop over chunks."""
    names = RegionNames(f"ck{number}", f"nck{number}", f"lo{number}", f"hi{number}")
    setup: list[str] = []
    body: list[str] = []
    finish: list[str] = []
    for kernel in kernels:
        before, inside, after = _kernel_parts(f, kernel, names)
        heading = kernel_heading(kernel)
        setup += [f"    # for batch region {number}: {heading}", *before]
        if inside:
            body += [f"        # {heading}", *("    " + line for line in inside)]
        finish += after
    f.put(f"{names.chunks} = chunk_count(nb)")  # read by the partial sums' allocations
    f.lines += setup
    # the region's heading has the form of a kernel's (benchmarks/kernel_times.py times what follows it)
    f.put(f"# k{kernels[0].id} batch region {number}: {' '.join(f'k{k.id}' for k in kernels)}, chunk by chunk "
          "across threads")
    f.put(f"for {names.chunk} in prange({names.chunks}):")
    f.put(f"{names.lo} = {names.chunk} * nb // {names.chunks}", 2)
    f.put(f"{names.hi} = ({names.chunk} + 1) * nb // {names.chunks}", 2)
    f.lines += body
    f.lines += finish


def _kernel_parts(f, kernel: ScheduledKernel, names: RegionNames) -> Parts:
    if isinstance(kernel, LoopKernel):
        return f.region_loop(kernel, names)
    if isinstance(kernel, GemmKernel):
        return _per_example_product(f, kernel, names)
    assert isinstance(kernel, OpKernel)
    render = REGION_OPS.get(kernel.node.op)
    if render is None:
        raise LoweringError(f"op '{kernel.node.op}' cannot run in a batch region")
    return render(f, kernel.node, names)


def _examples(names: RegionNames, line: str) -> list[str]:
    return [f"    for i0 in range({names.lo}, {names.hi}):", f"        {line}"]


def _per_example_product(f, kernel: GemmKernel, names: RegionNames) -> Parts:
    """``W @ cols[n]`` or ``a[n] @ b[n]``, one BLAS product per example of the chunk."""
    node = kernel.node
    a_type = f.node(kernel.a.value).type
    left = f.ref(kernel.a.value) + ("[i0]" if a_type.rank == 3 else "")
    setup = [f"    v{node.id} = empty_{node.type.dtype}({f.shape(node.type.shape)})"]
    return setup, _examples(names, f"dot_into(v{node.id}[i0], {left}, {f.ref(kernel.b.value)}[i0])"), []


def _view(f, node: Node, names: RegionNames) -> Parts:
    """A reshape: a view of memory allocated before the chunks, so it is taken there."""
    start = len(f.lines)
    f.put(f"v{node.id} = reshape({f.ref(node.inputs[0])}, {f.shape(node.type.shape)})")
    lines = f.lines[start:]
    del f.lines[start:]
    return lines, [], []


def _unwindow(f, node: Node, names: RegionNames) -> Parts:
    """col2im, example by example."""
    (sh, sw), (dh, dw) = node.attrs["stride"], node.attrs["dilation"]
    top, _, left, _ = node.attrs["padding"]
    numbers = ", ".join(f.shape_dim(v) for v in (sh, sw, dh, dw, top, left))
    setup = [f"    v{node.id} = empty_{node.type.dtype}({f.shape(node.type.shape)})"]
    call = f"unwindow_into(v{node.id}[i0], {f.ref(node.inputs[0])}[i0], {numbers})"
    return setup, _examples(names, call), []


def _contract_batch(f, node: Node, names: RegionNames) -> Parts:
    """sum over the examples of a[n] @ b[n]^T: each chunk adds its examples' products into its own partial sum."""
    a, b = node.inputs
    m, k = (f.shape_dim(d) for d in node.type.shape)
    partial = f"acc{node.id}"
    setup = [f"    {partial} = zeros_{node.type.dtype}((i64({names.chunks}), {m}, {k}))"]
    call = f"add_product_nt({partial}[{names.chunk}], {f.ref(a)}[i0], {f.ref(b)}[i0])"
    return setup, _examples(names, call), [f"    v{node.id} = chunk_sum({partial})"]


REGION_OPS: dict[str, Callable[..., Parts]] = {
    "reshape": _view,
    "expand_dims": _view,
    "unwindow": _unwindow,
    "contract_batch": _contract_batch,
}
