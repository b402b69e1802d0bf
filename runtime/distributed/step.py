"""The data-parallel training step: every rank holds the same parameters and the same global batch order; each
takes its rows of the global batch and computes, with its training graph for a rank (compiler/passes/
data_parallel.py), its share of the batch's objective and gradients; one all-reduce sums them, and every rank
applies the same update.

The arithmetic of one process with batch B: rank r's graph multiplies its objective (a mean over its n_r rows)
by its share n_r / B, so the shares' sum is the batch's mean, and its gradients add up likewise; batchnorm's
batch statistics are summed over the ranks inside the step (synchronized batchnorm), so every rank normalizes
with the whole batch's. Dropout masks are drawn for the whole batch on every rank (the same stream) and each
keeps its rows (:meth:`Program.gradients`). Gradient-norm clipping needs the global gradients' norm: it runs
after the sum, on the host, with the compiled pass's formula. A rank whose shard is empty (a last batch of
fewer rows than ranks) runs the step on one row with share 0, so that it still joins every exchange. Attention
dropout hashes each weight's place: a shard's entries are numbered from its first row's, so its drops are the
whole batch's too.

One buffer, one gradients' exchange per step: the gradients flattened in the parameters' order, the objective
last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from gradc.compiler.driver import OBJECTIVE_KEY, PARAM_GRADIENTS, SHARE_INPUT, install_sum_over_ranks
from gradc.dsl.diagnostics import GradcError

from .exchange import Exchanger

if TYPE_CHECKING:
    from ..execution.program import Program

Arrays = dict[str, np.ndarray]


def shard_bounds(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Rows start..stop of a batch of ``rows`` that ``rank`` of ``size`` takes: contiguous runs, the first
    ``rows % size`` ranks one row more (a batch of fewer rows than ranks leaves some ranks none)."""
    base, extra = divmod(rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class DataParallelStep:
    """Training steps of ``program`` on the shards of global batches, its gradients summed over the world.
    Creating one switches ``program`` to the training graph of a rank; :meth:`close` switches it back."""

    def __init__(self, program: Program, exchanger: Exchanger, clip_norm: float = 0.0):
        self.program = program
        self.exchanger = exchanger
        self.world = exchanger.world
        self.clip_norm = clip_norm
        program.set_data_parallel(True)
        install_sum_over_ranks(lambda x: exchanger.allreduce(x, "the batch statistics' all-reduce"))
        mode = program.training_mode()
        self.share_dtype = mode.feed_spec.declared[SHARE_INPUT].numpy_dtype
        unsplittable = [name for name, per_row in mode.entries_per_row.items() if per_row == 0]
        if unsplittable and self.world.distributed:
            self.close()
            raise GradcError(f"data-parallel training cannot split the dropout of {', '.join(unsplittable)} by "
                             "batch rows: its attention's leading dimensions do not start with the batch")
        if self.world.distributed:  # every entry point the run calls, compiled before the first exchange (whose
            # deadline allows for a compile): no rank compiles later while the others wait at the short one
            mode.backend.compile((PARAM_GRADIENTS, "forward"))
            program.backend.compile(("forward",))
        params = program.params
        self.names = sorted(params)
        self.shapes = {name: params[name].shape for name in self.names}
        dtypes = {params[name].dtype for name in self.names}
        self.dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)
        self.sizes = [int(np.prod(self.shapes[name], dtype=np.int64)) for name in self.names]
        self.buffer = np.zeros(sum(self.sizes) + 1, dtype=self.dtype)

    def close(self) -> None:
        install_sum_over_ranks(None)
        self.program.set_data_parallel(False)

    def shard(self, batch: Arrays) -> tuple[Arrays, tuple[int, int, int]]:
        """This rank's rows of ``batch`` with its share fed, and (start, stop, rows) for the dropout masks; an
        empty shard is the first row with share 0."""
        rows = len(next(iter(batch.values())))
        start, stop = shard_bounds(rows, self.world.rank, self.world.size)
        share = (stop - start) / rows
        if stop == start:
            start, stop = 0, 1
        local = {name: values[start:stop] for name, values in batch.items()}
        local[SHARE_INPUT] = np.array(share, dtype=self.share_dtype)
        return local, (start, stop, rows)

    def step(self, batch: Arrays, lr: float) -> float:
        """One step on the global ``batch`` (every rank passes the same); returns the batch's objective."""
        local, shard = self.shard(batch)
        results = self.program.gradients(local, validate=False, shard=shard, params_only=True)
        buffer, offset = self.buffer, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            buffer[offset:offset + size] = np.ravel(results[f"grad/{name}"])
            offset += size
        buffer[-1] = float(results[OBJECTIVE_KEY])
        self.exchanger.allreduce(buffer, "the gradients' all-reduce")
        grads = self._views()
        if self.clip_norm > 0.0:
            self._clip(grads)
        self.program.apply_update(grads, lr=lr)
        return float(buffer[-1])

    def statistics_batches(self, batches: Iterator[Arrays]) -> Iterator[tuple[Arrays, int]]:
        """For batchnorm's running statistics: this rank's shard of each batch, standing for the whole batch
        (its graph computes the global batch's statistics)."""
        for batch in batches:
            local, (_, _, rows) = self.shard(batch)
            yield local, rows

    def _views(self) -> dict[str, np.ndarray]:
        views, offset = {}, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            views[name] = self.buffer[offset:offset + size].reshape(self.shapes[name])
            offset += size
        return views

    def _clip(self, grads: dict[str, np.ndarray]) -> None:
        """The clipping pass's scale, max_norm / max(norm, max_norm), on the summed gradients."""
        norm = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
        scale = self.clip_norm / max(norm, self.clip_norm)
        if scale < 1.0:
            for g in grads.values():
                g *= g.dtype.type(scale)
