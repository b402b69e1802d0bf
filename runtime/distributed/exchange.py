"""The collective exchanges of a data-parallel step, each with a deadline.

A blocking MPI call waits for ever when a rank has died without the launcher noticing, so every exchange is
started non-blocking (``Iallreduce``, ``Ibcast``) and polled until it completes or its deadline passes; a
missed deadline raises :class:`~.world.WorkerError` naming the exchange, and the caller stops the world.
The first exchange of a run waits longer: the ranks compile every entry point the run calls before it
(:class:`~.step.DataParallelStep`), not always equally fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import numpy as np

from .world import WorkerError, World, import_mpi

DEFAULT_TIMEOUT_S = 60.0
FIRST_TIMEOUT_S = 600.0  # covers a cold compile on a busy machine


def timeout_seconds() -> float:
    """The deadline of one exchange: ``GRADC_EXCHANGE_TIMEOUT`` seconds, else 60."""
    text = os.environ.get("GRADC_EXCHANGE_TIMEOUT", "")
    try:
        return float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise WorkerError(f"GRADC_EXCHANGE_TIMEOUT={text!r} is not a number of seconds") from None


class Exchanger:
    """The timed collectives of one world; ``seconds`` adds up the time spent in them (the all-reduce's share
    of a step)."""

    def __init__(self, world: World):
        self.world = world
        self.mpi = import_mpi() if world.distributed else None
        self.timeout = timeout_seconds()
        self.calls = 0
        self.seconds = 0.0

    def _wait(self, request, what: str) -> None:
        limit = FIRST_TIMEOUT_S if self.calls == 0 else self.timeout
        started = time.perf_counter()
        deadline = started + limit
        polls = 0
        while not request.Test():
            polls += 1
            if polls > 1000:  # after the first millisecond or so, yield the core to the rank it waits for
                time.sleep(0.0002)
            if time.perf_counter() > deadline:
                raise WorkerError(f"{what}: no answer from the other ranks in {limit:.0f} s (a rank stopped or "
                                  "hangs); stopping every rank")
        self.calls += 1
        self.seconds += time.perf_counter() - started

    def allreduce(self, buffer: np.ndarray, what: str = "all-reduce") -> np.ndarray:
        """Sum ``buffer`` (contiguous) over the ranks, in place."""
        if self.mpi is not None:
            self._wait(self.world.comm.Iallreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM), what)
        return buffer

    def broadcast(self, arrays: Mapping[str, np.ndarray], what: str = "broadcast") -> None:
        """Rank 0's values of ``arrays`` (contiguous) to every rank, in place, in their order."""
        if self.mpi is None:
            return
        for name in sorted(arrays):
            self._wait(self.world.comm.Ibcast(arrays[name], root=0), f"{what} of {name}")

    def agree(self, value: float, what: str) -> float:
        """The sum over the ranks of one number."""
        return float(self.allreduce(np.array([value], dtype=np.float64), what)[0])
