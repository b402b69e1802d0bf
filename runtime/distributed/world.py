"""Which rank of how many this process is, and the MPI communicator between them.

A process belongs to a world of several ranks when an MPI launcher started it (``mpiexec``/``mpirun`` of MPICH,
Open MPI or Intel MPI, or Slurm's ``srun``): their environment variables say so before MPI is touched, so a
plain ``gradc train`` never imports mpi4py. A world of one rank needs no MPI at all.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from gradc.dsl.diagnostics import GradcError

# what each launcher sets in every rank's environment: the world's size
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")
INSTALL_HINT = 'install the mpi extra: pip install -e ".[mpi]" (mpi4py and the MPICH wheel)'


class WorkerError(GradcError):
    """A failure of the world of ranks: an exchange that timed out, a rank that stopped."""


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    comm: Any = None  # mpi4py's COMM_WORLD; None in a world of one

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def label(self) -> str:
        return f"rank {self.rank} of {self.size}"


SINGLE = World(0, 1)


def launched_size() -> int:
    """The world's size an MPI launcher announced in the environment (1 when none did)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return int(value)
    return 1


def import_mpi() -> Any:
    """mpi4py's MPI module, or a clear error naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise GradcError(f"training on several ranks needs mpi4py ({error}); {INSTALL_HINT}") from None
    return MPI


def current_world() -> World:
    """This process's world: one rank unless an MPI launcher started several."""
    if launched_size() == 1:
        return SINGLE
    comm = import_mpi().COMM_WORLD
    return World(comm.Get_rank(), comm.Get_size(), comm) if comm.Get_size() > 1 else SINGLE


def share_cores(world: World) -> int:
    """Give this rank its share of the machine's cores for Numba's threads: the cores over the ranks on this
    machine (``mpiexec -n 2`` on 2 cores: one thread each; several threads per rank on a core would spin against
    each other), unless ``NUMBA_NUM_THREADS`` says otherwise. Returns the number of threads."""
    import numba

    if not world.distributed or os.environ.get("NUMBA_NUM_THREADS"):
        return numba.get_num_threads()
    local = world.comm.Split_type(import_mpi().COMM_TYPE_SHARED).Get_size()
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // local))
    numba.set_num_threads(threads)
    return threads


def world_for_errors() -> World:
    """The world to report an error in: :func:`current_world`, or one rank where MPI itself is missing."""
    try:
        return current_world()
    except GradcError:
        return SINGLE


def abort(world: World, message: str, status: int = 1) -> None:
    """Print ``message`` naming this rank and stop every rank of the world (MPI_Abort): the others are blocked
    in, or about to enter, an exchange that this rank will never join."""
    print(f"gradc: {world.label()}: {message.removeprefix('gradc: ')}", file=sys.stderr, flush=True)
    if world.comm is not None:
        world.comm.Abort(status)
    os._exit(status)  # MPI_Abort may return before the launcher's signal arrives
