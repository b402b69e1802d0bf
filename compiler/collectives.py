"""Sums over the ranks of a data-parallel world, as compiled code and the reference executor call them.

The compiler declares this extension point and nothing more: :func:`sum_over_ranks` adds an array over the
ranks in place through whatever the runtime installed with :func:`install_sum_over_ranks` (the world's timed
MPI all-reduce, ``runtime/distributed``), and is the identity where nothing was installed (one process). The
cpu target calls it from its kernel library's ``ranks_sum`` (an object-mode call inside the compiled entry
point), so every rank must run the same entry points in the same order: the data-parallel step sees to that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_installed: list[Callable[[np.ndarray], None] | None] = [None]


def install_sum_over_ranks(add_in_place: Callable[[np.ndarray], None] | None) -> None:
    """Route every ``ranks_sum`` of this process through ``add_in_place`` (None: back to the identity)."""
    _installed[0] = add_in_place


def sum_over_ranks(x: np.ndarray) -> None:
    """``x`` (a contiguous array) replaced by its sum over the ranks, in place."""
    add_in_place = _installed[0]
    if add_in_place is not None:
        add_in_place(x)
