"""Expansion of composite ops: each node whose op declares a decomposition (softmax, log_softmax, every loss,
min, logsumexp) is replaced by the primitives it is made of, so the schedule and the targets see only
primitives and library calls (GEMM).

It runs after the optimization pipeline: autodiff has used each composite's own gradient rule (more stable or
cheaper than differentiating the pieces), and the reference executor has the composite's NumPy forward to
check the expanded code against. A decomposition may build other composites; those expand in the same pass.
The source position of the composite goes with every node it expands to.

Expansions often build the same pieces (a loss's log_softmax and its gradient's softmax share the row
maximum and the sum of exponentials), so each new node that equals an existing one is merged into it here:
common-subexpression elimination over the new nodes only, found among the consumers of their operands, so the
pass costs what the expansions add, not the size of the graph.
"""

from __future__ import annotations

from dataclasses import replace

from ..builder import Builder, Ref
from ..graph import Graph
from ..ops.registry import get_op
from .cse import cse_key
from .patterns import replace_with


def expand(graph: Graph) -> Graph:
    return _prepare_scan_bodies(_expand_composites(graph))


def expand_composites(graph: Graph, keep: frozenset[str]) -> Graph:
    """The composites not in ``keep`` replaced by their primitives (scan bodies left as they are)."""
    return _expand_composites(graph, keep)


def _expand_composites(graph: Graph, keep: frozenset[str] = frozenset()) -> Graph:
    """Every composite replaced by its primitives, but the ops in ``keep`` (a target that has them natively:
    the ONNX exporter's softmax and convolutions)."""
    wanted = lambda n: n.op not in keep and get_op(n.op).expands(n)
    if not any(wanted(n) for n in graph.nodes()):
        return graph
    g = graph.copy()
    b = Builder(g)
    first_new = g.next_id
    pending = [i for i in g.order() if wanted(g.node(i))]
    while pending:
        node = g.node(pending.pop())
        view = replace(node, id=Ref(node.id), inputs=tuple(Ref(i) for i in node.inputs))
        start = g.next_id
        with b.at(node.line, node.col, origin=node.origin):
            value = get_op(node.op).decompose(b, view)
        replace_with(g, node, value)
        pending += [i for i in range(start, g.next_id) if i in g and wanted(g.node(i))]
    _merge_new_duplicates(g, first_new)
    return g


def _merge_new_duplicates(g: Graph, first_new: int) -> None:
    """Merge each node added since ``first_new`` into an equal node that is already there (in id order, which
    is topological for new nodes, so a node's operands are merged before it is looked at)."""
    constants: dict[tuple, int] | None = None
    for node_id in range(first_new, g.next_id):
        if node_id not in g:
            continue
        node = g.node(node_id)
        if not get_op(node.op).pure:
            continue
        key = cse_key(node)
        if node.inputs:
            candidates = (c for c in g.consumers(node.inputs[0]) if c < node_id)
            twin = next((c for c in candidates if cse_key(g.node(c)) == key), None)
        else:
            if constants is None:
                constants = {}
                for other in g.nodes():
                    if other.op == "const" and other.id < first_new:
                        constants.setdefault(cse_key(other), other.id)
            twin = constants.setdefault(key, node_id)
            twin = None if twin == node_id else twin
        if twin is not None:
            g.replace_uses(node_id, twin)
            g.remove(node_id)


def _prepare_scan_bodies(graph: Graph) -> Graph:
    """Each scan's body expanded the same way (nested scans too), and its array constants lifted out of it as
    constant operands of the scan (appended after its constants): a target compiles a body into a function
    of its operands alone."""
    scans = [n for n in graph.nodes() if n.op == "scan"]
    if not scans:
        return graph
    g = graph.copy()
    for node in scans:
        body, lifted = _lift_constants(expand(node.attrs["body"]))
        constants = tuple(g.add("const", (), c.type, {"value": c.attrs["value"]}, line=node.line, col=node.col,
                                origin=node.origin) for c in lifted)
        g.update(node.id, inputs=node.inputs + constants, attrs={**node.attrs, "body": body})
    return g


def _lift_constants(body: Graph) -> tuple[Graph, list]:
    """The body with every array constant turned into an input (after its other inputs), and those constants."""
    lifted = [n for n in body.nodes() if n.op == "const" and n.type.shape]
    if not lifted:
        return body, []
    g = body.copy()
    for const in lifted:
        g.replace_uses(const.id, g.add("input", (), const.type, name=f"const{const.id}"))
        g.remove(const.id)
    return g, lifted
