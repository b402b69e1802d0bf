"""Symbolic lengths: the sizes a model's symbolic dimensions besides the batch take, read off its data.

``input x: f32[N, T, F]`` declares two symbolic dimensions: the batch ``N``, which a compiled program leaves
open (one program for every batch size), and a length ``T``. A program is compiled for one size of each
length (:meth:`ModelSpec.bind` builds the model's graph again with the size in place of the name), as JAX's
jit specializes on shapes: the recurrence compiles to one loop whatever T is, so a new length costs one
compile, and the parameters never depend on it. This module finds those sizes in the arrays a program is
about to meet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradc.dsl.diagnostics import DataError

from .graph import Graph


def lengths_in(graph: Graph, arrays: Mapping[str, Any], source: str) -> dict[str, int]:
    """The size of each of ``graph``'s length symbols in ``arrays`` (input name -> array) from ``source``; an
    input of another rank is left to the feed checks. Two inputs that disagree on a length are refused, naming
    both."""
    found: dict[str, tuple[int, str]] = {}
    for node_id in graph.inputs().values():
        node = graph.node(node_id)
        if node.name not in arrays:
            continue
        shape = np.shape(arrays[node.name])
        if len(shape) != node.type.rank:
            continue
        for axis, dim in enumerate(node.type.shape):
            if dim not in graph.length_symbols:
                continue
            size = int(shape[axis])
            seen = found.setdefault(dim, (size, node.name))
            if seen[0] != size:
                raise DataError(f"{source}: '{seen[1]}' has {dim} = {seen[0]} but '{node.name}' has {dim} = {size} "
                                f"(axis {axis} of {node.name}: {node.type}); a batch has one length {dim}")
            if size < 1:
                raise DataError(f"{source}: '{node.name}' has {dim} = 0; a sequence needs at least one step")
    missing = [d for d in graph.length_symbols if d not in found]
    if missing:
        carriers = [graph.node(i) for i in graph.inputs().values() if set(missing) & set(graph.node(i).type.shape)]
        wanted = ", ".join(f"{n.name}: {n.type}" for n in carriers)
        raise DataError(f"{source}: no input gives the length {', '.join(missing)} of model '{graph.model_name}' "
                        f"(an array of the declared rank for {wanted})")
    return {dim: size for dim, (size, _) in found.items()}
