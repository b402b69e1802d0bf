"""Check the arrays a person feeds a program against the graph's declared inputs.

A missing, extra or wrongly shaped input, a non-integer array for an integer input, or a NaN is a
:class:`DataError` that names the input. Floating-point inputs accept any real array (cast to the declared
dtype); the batch dimension must have one size across all inputs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.ops.registry import get_op
from gradc.compiler.types import TensorType
from gradc.dsl.diagnostics import DataError


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Validate and cast the inputs; return them with the binding of the batch dimension."""
    declared = {name: graph.node(i).type for name, i in graph.inputs().items()}
    missing = [name for name in declared if name not in feeds]
    if missing:
        raise DataError(f"missing input {', '.join(repr(m) for m in missing)} "
                        f"(the model takes {', '.join(_describe(n, t) for n, t in declared.items())})")
    extra = [name for name in feeds if name not in declared]
    if extra:
        raise DataError(f"unexpected input {', '.join(repr(e) for e in extra)} "
                        f"(the model takes {', '.join(declared)})")
    bindings: dict[str, tuple[int, str]] = {}
    out = {}
    for name, want in declared.items():
        out[name] = _check_one(name, np.asarray(feeds[name]), want, bindings)
    return out, {symbol: size for symbol, (size, _) in bindings.items()}


def _describe(name: str, t: TensorType) -> str:
    return f"{name}: {t}"


def _check_one(name: str, array: np.ndarray, want: TensorType, bindings: dict[str, tuple[int, str]]):
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"input '{name}' must be numeric, got dtype {array.dtype}")
    if len(array.shape) != want.rank:
        raise DataError(f"input '{name}' expects {want}, got an array of shape {array.shape}")
    for axis, (dim, size) in enumerate(zip(want.shape, array.shape, strict=True)):
        if isinstance(dim, str):
            seen = bindings.setdefault(dim, (size, name))
            if seen[0] != size:
                raise DataError(f"input '{name}' has {dim}={size} on axis {axis} but input '{seen[1]}' "
                                f"has {dim}={seen[0]}")
        elif dim != size:
            raise DataError(f"input '{name}' expects {want}, got an array of shape {array.shape} "
                            f"(axis {axis} should be {dim})")
    if want.is_float:
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise DataError(f"input '{name}' contains NaN or infinite values")
        return array.astype(want.numpy_dtype, copy=False)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(want.numpy_dtype)
        raise DataError(f"input '{name}' is {want} and needs integer values, got dtype {array.dtype}")
    return array.astype(want.numpy_dtype, copy=False)


def check_label_ranges(graph: Graph, feeds: Mapping[str, np.ndarray]) -> None:
    """Class labels must index the scores they select from: ``0 <= label < classes``."""
    for name, node_id in graph.inputs().items():
        for consumer in graph.consumers(node_id):
            node = graph.node(consumer)
            domains = get_op(node.op).domains
            for position, operand in enumerate(node.inputs):
                if operand != node_id or domains.get(position) != "labels":
                    continue
                classes = graph.node(node.inputs[0]).type.shape[-1]
                labels = feeds[name]
                if labels.size and (labels.min() < 0 or labels.max() >= classes):
                    bad = labels.min() if labels.min() < 0 else labels.max()
                    raise DataError(f"{node.op}: label {bad} in input '{name}' is out of range [0, {classes})")
