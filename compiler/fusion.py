"""Elementwise fusion: partition the optimized graph into kernels (the target-neutral kernel IR).

Elementwise ops over the same shape join one loop, and reductions of that shape end it: a bias add and
its activation; an activation's backward times the upstream gradient, with the bias gradient's sum over
the batch; softmax minus one-hot, times 1/N. Everything else (matrix products, softmax, losses, shape
ops) is a kernel of its own. A value is stored to memory only when something outside its loop reads it
or it is part of the interface; the rest stay in registers.

Joining a loop is refused when it would make the kernel graph cyclic (an operand computed by a kernel
that itself depends on the loop) or when an operand is a reduction of the same loop (only known after it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .graph import SOURCE_OPS, Graph, Kernel
from .ops.registry import get_op


@dataclass
class _Group:
    id: int
    kind: str
    domain: tuple
    nodes: list[int] = field(default_factory=list)
    reductions: set[int] = field(default_factory=set)


def fuse(graph: Graph) -> Graph:
    g = graph.copy()
    groups: list[_Group] = []
    group_of: dict[int, int] = {}
    kernel_dag = nx.DiGraph()

    def new_group(kind: str, domain: tuple, node_id: int) -> None:
        group = _Group(len(groups), kind, domain, [node_id])
        groups.append(group)
        kernel_dag.add_node(group.id)
        place(node_id, group)

    def data_operands(node_id: int) -> list[int]:
        """Operands whose values are read (not those read only for their shape)."""
        node = g.node(node_id)
        skip = get_op(node.op).shape_only
        return [i for k, i in enumerate(node.inputs) if k not in skip]

    def place(node_id: int, group: _Group) -> None:
        group_of[node_id] = group.id
        for operand in data_operands(node_id):
            source = group_of.get(operand)
            if source is not None and source != group.id:
                kernel_dag.add_edge(source, group.id)

    def can_join(node_id: int, group: _Group) -> bool:
        for operand in data_operands(node_id):
            if operand in group.reductions:
                return False
            other = group_of.get(operand)
            if other is not None and other != group.id and nx.has_path(kernel_dag, group.id, other):
                return False
        return True

    for node_id in g.order():
        node = g.node(node_id)
        if node.op in SOURCE_OPS:
            continue
        op = get_op(node.op)
        if op.scalar is not None:
            domain = node.type.shape
            candidates = [groups[group_of[i]] for i in data_operands(node_id) if i in group_of]
        elif op.reduce is not None:
            domain = g.node(node.inputs[0]).type.shape
            candidates = [groups[group_of[node.inputs[0]]]] if node.inputs[0] in group_of else []
        else:
            new_group("op", (), node_id)
            continue
        target = next((c for c in candidates if c.kind == "loop" and c.domain == domain and can_join(node_id, c)),
                      None)
        if target is None:
            new_group("loop", domain, node_id)
            target = groups[-1]
        else:
            target.nodes.append(node_id)
            place(node_id, target)
        if op.reduce is not None:
            target.reductions.add(node_id)

    roots = g.roots()
    _merge_producer_loops(groups, group_of, kernel_dag, roots, g)
    order = list(nx.lexicographical_topological_sort(kernel_dag))
    renumber = {old: new for new, old in enumerate(order)}
    kernels = []
    for old in order:
        group = groups[old]
        assert group.nodes, "a merged group leaves the kernel graph"
        stored = tuple(
            n for n in group.nodes
            if n in roots or n in group.reductions or group.kind == "op"
            or any(group_of.get(c) != group.id and n in data_operands(c) for c in g.consumers(n))
        )
        kernels.append(Kernel(renumber[old], group.kind, tuple(group.nodes), group.domain, stored))
    g.kernels = tuple(kernels)
    return g


RECOMPUTED_NODES = 2  # a smaller loop this short is recomputed per element of the loop that reads it


def _broadcasts_to(small: tuple, large: tuple) -> bool:
    """``small`` is ``large`` with some axes of size 1 (or fewer leading axes): NumPy broadcasting."""
    if len(small) > len(large):
        return False
    return all(s == 1 or s == t for s, t in zip(reversed(small), reversed(large), strict=False))


def _merge_producer_loops(groups: list[_Group], group_of: dict[int, int], kernel_dag: nx.DiGraph,
                          roots: set[int], g: Graph) -> None:
    """Vertical fusion of what the greedy pass left apart: a loop without reductions that only one later loop
    reads joins that loop (log_softmax's ``shifted - log(sum)`` with the loss that reads it; the producer could
    not join the loop its operands came from without a cycle). A loop of a smaller, broadcast domain joins too
    when it is short and stores nothing: its few scalar ops are recomputed per element of the larger loop
    instead of costing a kernel (``log(sum)`` over [N, 1] read by a loop over [N, C])."""
    for consumer in groups:
        while consumer.kind == "loop" and consumer.nodes:  # until no producer joins (one may expose another)
            producer = next((groups[p] for p in sorted(kernel_dag.predecessors(consumer.id))
                             if _joins(groups[p], consumer, kernel_dag, roots, g)), None)
            if producer is None:
                break
            # nothing else reads the producer, so no path leads from it to the consumer through a third kernel:
            # merging cannot make the kernel graph cyclic, and its nodes go first
            consumer.nodes[:0] = producer.nodes
            for node_id in producer.nodes:
                group_of[node_id] = consumer.id
            for source in list(kernel_dag.predecessors(producer.id)):
                kernel_dag.add_edge(source, consumer.id)
            kernel_dag.remove_node(producer.id)
            producer.nodes = []


def _joins(producer: _Group, consumer: _Group, kernel_dag: nx.DiGraph, roots: set[int], g: Graph) -> bool:
    if producer.kind != "loop" or producer.reductions or set(kernel_dag.successors(producer.id)) != {consumer.id}:
        return False
    return producer.domain == consumer.domain or (
        len(producer.nodes) <= RECOMPUTED_NODES and not roots.intersection(producer.nodes)
        and _broadcasts_to(producer.domain, consumer.domain)
        and not any(_reads_loop_position(g.node(n).op) for n in producer.nodes))


def _reads_loop_position(op_name: str) -> bool:
    """An op whose value depends on where in its loop it is (onehot compares its label with the last loop
    index): recomputed inside a larger loop it would see that loop's indices."""
    op = get_op(op_name)
    return bool(op.left_aligned) or "{i_last}" in (op.scalar or "")
