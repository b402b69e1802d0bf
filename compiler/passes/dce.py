"""Dead-code elimination: drop every node that no output, loss, objective or gradient depends on."""

from __future__ import annotations

from ..graph import Graph


def dce(graph: Graph) -> Graph:
    """Inputs and parameters stay even when unused: they are the program's interface."""
    g = graph.copy()
    live = g.upstream(g.roots())
    for node_id in reversed(g.order()):
        if node_id not in live and g.node(node_id).op not in ("input", "param"):
            g.remove(node_id)
    return g
