"""Weight decay as a graph pass: the objective gains lambda/2 * sum of squared weights, before autodiff, so the
gradient of every weight gains lambda * w.

Which parameters are weights is decided by the graph, not by names: a parameter whose every use is an
addition or a subtraction is a bias and is not decayed; every other parameter (one that multiplies, or feeds
a matrix product or a function) is a weight. In the models of models/: the dense layers' weights,
logistic_regression's w and tiny_regression's w1..w3 are decayed; every bias is not.
"""

from __future__ import annotations

from collections.abc import Callable

from ..builder import Builder, Ref
from ..graph import Graph

BIAS_USES = ("add", "sub")


def decayed_params(graph: Graph) -> list[str]:
    """The parameters weight decay covers, in declaration order."""
    names = []
    for name, node_id in graph.params().items():
        uses = [graph.node(c).op for c in graph.consumers(node_id)]
        if uses and not all(op in BIAS_USES for op in uses):
            names.append(name)
    return names


def weight_decay(strength: float) -> Callable[[Graph], Graph]:
    """A pass adding ``strength * l2(w)`` (= strength/2 * sum w^2) for every weight to the objective."""

    def add_weight_decay(graph: Graph) -> Graph:
        g = graph.copy()
        if strength == 0.0 or g.objective is None:
            return g
        b = Builder(g)
        objective = g.node(g.objective)
        total = Ref(g.objective)
        with b.at(objective.line, objective.col, origin="weight decay"):
            for name in decayed_params(g):
                total = b.add(total, b.mul(b.l2(Ref(g.params()[name])), strength))
        g.objective = total
        return g

    return add_weight_decay
