"""Check the arrays a person feeds a program against the graph's declared inputs.

A missing, extra or wrongly shaped input, a non-integer array for an integer input, a NaN, a value beyond
the range of the declared dtype, a class label out of range or a probability (``bce``'s target) outside
[0, 1] is a :class:`DataError` that names the input. Floating-point inputs accept any real array (cast to
the declared dtype); the batch dimension must have one size across all inputs.

:class:`FeedSpec` is built once per program, so checking a batch costs a few microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gradc.compiler.graph import Graph
from gradc.compiler.ops.registry import get_op
from gradc.compiler.types import TensorType
from gradc.dsl.diagnostics import DataError


@dataclass(frozen=True)
class DomainUse:
    """An input read by an op that constrains its values: labels (with a class count), probabilities..."""

    input: str
    op: str
    domain: str
    classes: int  # for labels: the size of the scores' last axis (2 when it is the batch dimension)


def domain_uses(graph: Graph) -> list[DomainUse]:
    """Every input used in a constrained domain, from the op declarations' ``domains``."""
    uses = []
    for name, input_id in graph.inputs().items():
        for node_id, consumer in _readers(graph, input_id):
            node = graph.node(consumer)
            domains = get_op(node.op).domains
            for position, operand in enumerate(node.inputs):
                if operand == node_id and position in domains:
                    classes = graph.node(node.inputs[0]).type.shape[-1] if domains[position] == "labels" else 0
                    uses.append(DomainUse(name, node.op, domains[position],
                                          classes if isinstance(classes, int) else 2))
    return uses


def _readers(graph: Graph, node_id: int) -> list[tuple[int, int]]:
    """(value, consumer) pairs of the ops that read a node, seeing through the casts of the promotion rule (an
    f32 probability read by an f64 loss is still a probability)."""
    pairs = []
    for consumer in graph.consumers(node_id):
        if graph.node(consumer).op == "cast":
            pairs += _readers(graph, consumer)
        else:
            pairs.append((node_id, consumer))
    return pairs


@dataclass(frozen=True)
class FeedSpec:
    declared: dict[str, TensorType]
    labels: tuple[DomainUse, ...]
    probabilities: tuple[DomainUse, ...] = ()

    @classmethod
    def from_graph(cls, graph: Graph) -> FeedSpec:
        declared = {name: graph.node(i).type for name, i in graph.inputs().items()}
        uses = domain_uses(graph)
        return cls(declared, tuple(u for u in uses if u.domain == "labels"),
                   tuple(u for u in uses if u.domain == "probability"))

    def check(self, feeds: Mapping[str, np.ndarray], scan_values: bool = True) -> dict[str, np.ndarray]:
        """Validate and cast the inputs. ``scan_values`` also checks every value (NaN, label range)."""
        if feeds.keys() != self.declared.keys():
            self._wrong_names(feeds)
        bindings: dict[str, tuple[int, str]] = {}
        out = {name: _check_one(name, feeds[name], want, bindings, scan_values)
               for name, want in self.declared.items()}
        if scan_values:
            for use in self.labels:
                labels = out[use.input]
                if labels.size and (labels.min() < 0 or labels.max() >= use.classes):
                    bad = labels.min() if labels.min() < 0 else labels.max()
                    raise DataError(f"{use.op}: label {bad} in input '{use.input}' is out of range "
                                    f"[0, {use.classes})")
            for use in self.probabilities:
                values = out[use.input]
                if values.size and (values.min() < 0 or values.max() > 1):
                    bad = values.min() if values.min() < 0 else values.max()
                    loss = use.op.removesuffix("_with_logits")  # as written: bce(sigmoid(z)) is optimized to that
                    raise DataError(f"{loss}: input '{use.input}' holds {bad:g}; {loss} reads it as a "
                                    "probability (a target in [0, 1], e.g. 0 or 1 for two classes)")
        return out

    def _wrong_names(self, feeds: Mapping[str, np.ndarray]) -> None:
        missing = [name for name in self.declared if name not in feeds]
        if missing:
            takes = ", ".join(f"{n}: {t}" for n, t in self.declared.items())
            raise DataError(f"missing input {', '.join(repr(m) for m in missing)} (the model takes {takes})")
        extra = [name for name in feeds if name not in self.declared]
        raise DataError(f"unexpected input {', '.join(repr(e) for e in extra)} "
                        f"(the model takes {', '.join(self.declared)})")


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray], scan_values: bool = True) -> dict[str, np.ndarray]:
    return FeedSpec.from_graph(graph).check(feeds, scan_values)


def _check_one(name: str, value, want: TensorType, bindings: dict[str, tuple[int, str]], scan_values: bool):
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    kind = array.dtype.kind
    if kind not in "biuf":
        raise DataError(f"input '{name}' must be numeric, got dtype {array.dtype}")
    if array.ndim != want.rank:
        raise DataError(f"input '{name}' expects {want}, got an array of shape {array.shape}")
    for axis, (dim, size) in enumerate(zip(want.shape, array.shape, strict=True)):
        if dim.__class__ is str:
            seen = bindings.setdefault(dim, (size, name))
            if seen[0] != size:
                raise DataError(f"input '{name}' has {dim}={size} on axis {axis} but input '{seen[1]}' "
                                f"has {dim}={seen[0]}")
        elif dim != size:
            raise DataError(f"input '{name}' expects {want}, got an array of shape {array.shape} "
                            f"(axis {axis} should be {dim})")
    if want.is_float:
        if scan_values and kind == "f" and not np.isfinite(array).all():
            raise DataError(f"input '{name}' contains NaN or infinite values")
    elif kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise DataError(f"input '{name}' is {want} and needs integer values, got dtype {array.dtype}")
    if array.size and (scan_values or array.dtype != want.numpy_dtype):
        _check_range(name, array, want)
    return array.astype(want.numpy_dtype, copy=False)


def _check_range(name: str, array: np.ndarray, want: TensorType) -> None:
    """Values that the declared dtype cannot hold (a float64 beyond float32's range would become inf, an
    integer beyond int32's would wrap around) are refused."""
    target = np.dtype(want.numpy_dtype)
    if np.can_cast(array.dtype, target, casting="safe"):
        return
    limits = np.finfo(target) if target.kind == "f" else np.iinfo(target)
    low, high = array.min().item(), array.max().item()  # Python numbers: compared with the limits exactly
    smallest, largest = (float(limits.min), float(limits.max)) if target.kind == "f" else (limits.min, limits.max)
    if low < smallest or high > largest:
        bad = low if low < smallest else high
        raise DataError(f"input '{name}' holds {bad:g}, beyond the range of {target.name} "
                        f"({smallest:g} to {largest:g}), the dtype of '{name}: {want}'")
