"""Data-parallel training over MPI (mpi4py): the world of ranks a run belongs to (:mod:`.world`), the timed
collective exchanges of one training step (:mod:`.exchange`), the sharded training step (:mod:`.step`) and
``gradc train --workers N`` (:mod:`.launch`). The ``mpi`` extra installs mpi4py and the MPICH wheel; nothing here
imports mpi4py unless the process was started by an MPI launcher or asked for workers."""
