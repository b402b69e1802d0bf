"""``gradc train FILE --workers N``: the same command on N ranks of this machine, through ``mpiexec``.

The launcher is the one installed beside this Python (the MPICH wheel of the ``mpi`` extra puts ``mpiexec`` in
the environment's ``bin``), else the first on ``PATH`` (a system MPI). Each rank gets an equal share of the
cores for Numba's threads and a one-thread BLAS, unless the user set those variables. Across machines, run
``mpiexec -n N --hostfile H gradc train FILE`` (or ``srun``) directly: every rank finds its place from the
launcher's environment (:mod:`.world`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .world import INSTALL_HINT, WorkerError, import_mpi


def find_mpiexec() -> str:
    """The MPI launcher for this Python's environment."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise WorkerError(f"--workers needs an MPI launcher (mpiexec), and none was found; {INSTALL_HINT}")
    return found


def without_workers(argv: list[str]) -> list[str]:
    """``argv`` with its ``--workers N`` (or ``--workers=N``) taken out: what each rank runs."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


def rank_environment(workers: int) -> dict[str, str]:
    """This environment, with each rank's share of the cores for Numba's threads (unless set)."""
    env = dict(os.environ)
    if not env.get("NUMBA_NUM_THREADS"):
        env["NUMBA_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def launch(argv: list[str], workers: int) -> int:
    """Run ``gradc`` with ``argv`` (``--workers`` removed) on ``workers`` ranks; their exit status."""
    import_mpi()  # a clear message now, not one per rank
    command = [find_mpiexec(), "-n", str(workers), sys.executable, "-m", "gradc", *without_workers(argv)]
    status = subprocess.run(command, env=rank_environment(workers)).returncode
    if status != 0:
        print(f"gradc: the {workers} workers stopped (exit status {status}); the run folder keeps the last "
              "good checkpoint, last.npz, to continue from with --resume (any number of workers)", file=sys.stderr)
    return status
