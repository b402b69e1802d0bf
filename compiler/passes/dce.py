"""Dead-code elimination: drop every node that no output, loss, objective or gradient depends on."""

from __future__ import annotations

import networkx as nx

from ..graph import Graph


def dce(graph: Graph) -> Graph:
    """Inputs and parameters stay even when unused: they are the program's interface."""
    g = graph.copy()
    live: set[int] = set()
    for root in g.roots():
        live |= nx.ancestors(g.dag, root) | {root}
    for node_id in reversed(g.order()):
        if node_id not in live and g.node(node_id).op not in ("input", "param"):
            g.remove(node_id)
    return g
