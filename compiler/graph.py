"""The graph IR: a typed DAG held in networkx.

Each node is one value: the op that computes it, its operands (in order; an operand may repeat, as in
``x * x``), its attributes, its :class:`TensorType`, and the line and column of the ``.model`` text it
came from. Node ids are never reused, so the text form of two stages diffs cleanly. The graph also
names its interface: outputs, losses, the objective that autodiff differentiates, and gradients.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import numpy as np

from .types import TensorType

SOURCE_OPS = ("input", "param", "const")


@dataclass(frozen=True)
class Kernel:
    """One unit of generated code: a fused loop nest, or one op that a target lowers on its own.

    kind "loop": ``nodes`` are elementwise ops over the ``domain`` shape, computed per element, and
    reductions of that domain that end the loop; ``stored`` are the nodes written to memory (the rest live
    in registers). kind "op": a single node (a matrix product, softmax, a loss) lowered by the target's
    table. The kernel IR is target-neutral: the CPU and CUDA targets lower the same kernels.
    """

    id: int
    kind: str
    nodes: tuple[int, ...]
    domain: tuple[int | str, ...] = ()
    stored: tuple[int, ...] = ()


@dataclass(frozen=True)
class Node:
    id: int
    op: str
    inputs: tuple[int, ...]
    type: TensorType
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    line: int | None = None
    col: int | None = None
    name: str | None = None  # the user's name for this value, if it has one
    origin: str | None = None  # the statement or layer that produced it (a row of the summary)

    def attr_key(self) -> tuple:
        """A hashable form of the attributes (arrays by content), for CSE."""
        return tuple(sorted((k, _hashable(v)) for k, v in self.attrs.items()))


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, float) and value != value:
        return ("nan",)
    return value


class Graph:
    """A typed computation DAG with a named interface (outputs, losses, objective, gradients)."""

    def __init__(self, model_name: str, batch_symbol: str | None = None, length_symbols: tuple[str, ...] = ()):
        self.model_name = model_name
        self.batch_symbol = batch_symbol
        # symbolic dimensions besides the batch (a sequence's T): the graph is typed with them, and a program
        # binds them to the sizes of the data it meets before it compiles (see compiler/binding.py)
        self.length_symbols = length_symbols
        self.dag = nx.DiGraph()
        self.outputs: dict[str, int] = {}
        self.losses: dict[str, int] = {}
        self.grads: dict[str, int] = {}
        self.objective: int | None = None
        self.next_id = 0
        # The dtype of a float number that meets only integer tensors (k * 0.1), or stands alone: f64 in a model
        # whose every float input and parameter is f64, else f32 (set by the front end).
        self.float_dtype = "f32"
        self.kernels: tuple[Kernel, ...] | None = None  # set by the fusion pass (stage "fused")
        self._order: list[int] | None = None  # the topological order, until the edges change

    # ------------------------------------------------------------ building
    def add(
        self,
        op: str,
        inputs: Iterable[int],
        type: TensorType,
        attrs: dict[str, Any] | None = None,
        *,
        line: int | None = None,
        col: int | None = None,
        name: str | None = None,
        origin: str | None = None,
    ) -> int:
        inputs = tuple(inputs)
        for i in inputs:
            if i not in self.dag:
                raise KeyError(f"operand %{i} is not in the graph")
        node_id = self.next_id
        self.next_id += 1
        node = Node(node_id, op, inputs, type, dict(attrs or {}), line, col, name, origin)
        self.dag.add_node(node_id, node=node)
        for i in inputs:
            self.dag.add_edge(i, node_id)
        self._order = None
        return node_id

    def update(self, node_id: int, **changes: Any) -> None:
        """Replace fields of a node (its operands too, keeping the edges in step)."""
        old = self.node(node_id)
        new = replace(old, **changes)
        if new.inputs != old.inputs:
            for i in set(old.inputs):
                self.dag.remove_edge(i, node_id)
            for i in new.inputs:
                self.dag.add_edge(i, node_id)
            self._order = None
        self.dag.nodes[node_id]["node"] = new

    def replace_uses(self, old: int, new: int) -> None:
        """Make every consumer of ``old`` (and every interface entry naming it) use ``new`` instead."""
        if old == new:
            return
        for consumer in list(self.dag.successors(old)):
            node = self.node(consumer)
            self.update(consumer, inputs=tuple(new if i == old else i for i in node.inputs))
        for table in (self.outputs, self.losses, self.grads):
            if old in table.values():
                for key, value in table.items():
                    if value == old:
                        table[key] = new
        if self.objective == old:
            self.objective = new
        old_node, new_node = self.node(old), self.node(new)
        if new_node.name is None and old_node.name is not None and new_node.op not in SOURCE_OPS:
            self.update(new, name=old_node.name)

    def remove(self, node_id: int) -> None:
        if any(True for _ in self.dag.successors(node_id)):
            raise ValueError(f"%{node_id} still has consumers")
        self.dag.remove_node(node_id)
        self._order = None

    def copy(self) -> Graph:
        other = copy.copy(self)
        other.dag = _copy_dag(self.dag)
        other.outputs = dict(self.outputs)
        other.losses = dict(self.losses)
        other.grads = dict(self.grads)
        other._order = None if self._order is None else list(self._order)
        return other

    # ------------------------------------------------------------ reading
    def node(self, node_id: int) -> Node:
        return self.dag.nodes[node_id]["node"]

    def __contains__(self, node_id: int) -> bool:
        return node_id in self.dag

    def __len__(self) -> int:
        return self.dag.number_of_nodes()

    def order(self) -> list[int]:
        """Node ids in topological order, ties broken by id, so every printout is deterministic.

        Computed once and kept until the graph changes."""
        if self._order is None:
            self._order = _lexicographic_order(self.dag)
        return list(self._order)

    def upstream(self, targets: Iterable[int]) -> set[int]:
        """``targets`` and every node they depend on: one sweep, however many targets."""
        return _reach(self.dag.predecessors, targets)

    def downstream(self, sources: Iterable[int]) -> set[int]:
        """``sources`` and every node that depends on one of them: one sweep."""
        return _reach(self.dag.successors, sources)

    def nodes(self) -> Iterator[Node]:
        for node_id in self.order():
            yield self.node(node_id)

    def consumers(self, node_id: int) -> list[int]:
        return sorted(self.dag.successors(node_id))

    def inputs(self) -> dict[str, int]:
        return {n.name: n.id for n in self.nodes() if n.op == "input"}

    def params(self) -> dict[str, int]:
        return {n.name: n.id for n in self.nodes() if n.op == "param"}

    def roots(self) -> set[int]:
        """The values the graph exists to compute: outputs, losses, the objective and gradients."""
        roots = set(self.outputs.values()) | set(self.losses.values()) | set(self.grads.values())
        if self.objective is not None:
            roots.add(self.objective)
        return roots

    def kernel_of(self) -> dict[int, int]:
        """node id -> kernel id, once the graph is fused."""
        return {n: k.id for k in self.kernels or () for n in k.nodes}

    def kind(self, node_id: int) -> str:
        """input, param, constant, output, loss, gradient or intermediate."""
        op = self.node(node_id).op
        if op == "input":
            return "input"
        if op == "param":
            return "param"
        if node_id in self.losses.values():
            return "loss"
        if node_id in self.outputs.values():
            return "output"
        if node_id == self.objective:
            return "loss"
        if node_id in self.grads.values():
            return "gradient"
        if op == "const":
            return "constant"
        return "intermediate"


def _reach(step: Callable[[int], Iterable[int]], start: Iterable[int]) -> set[int]:
    seen = set(start)
    stack = list(seen)
    while stack:
        for other in step(stack.pop()):
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


# Every pass copies the graph and reads its order, so these two run on the DAG's own tables (networkx's
# ``_node``, ``_succ``, ``_pred``, which this module alone touches) rather than through its views.


def _copy_dag(dag: nx.DiGraph) -> nx.DiGraph:
    """A copy of the DAG's structure; the (immutable) nodes are shared, edges carry no data."""
    other = nx.DiGraph()
    other._node = {n: {"node": data["node"]} for n, data in dag._node.items()}
    other._succ = other._adj = {n: {m: {} for m in succ} for n, succ in dag._succ.items()}
    other._pred = {n: {m: other._succ[m][n] for m in pred} for n, pred in dag._pred.items()}
    return other


def _lexicographic_order(dag: nx.DiGraph) -> list[int]:
    """Kahn's topological sort taking the smallest ready id first (networkx's lexicographical order)."""
    waiting = {n: len(pred) for n, pred in dag._pred.items()}
    ready = [n for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = heapq.heappop(ready)
        order.append(n)
        for m in dag._succ[n]:
            waiting[m] -= 1
            if waiting[m] == 0:
                heapq.heappush(ready, m)
    if len(order) != len(waiting):
        raise nx.NetworkXUnfeasible("the graph has a cycle")
    return order
