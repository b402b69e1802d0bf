"""The rewrite engine: a rule set applied over the graph until nothing changes.

A rule set maps an op name to a rule; a rule looks at one node of that op and returns the id of a node that
can stand for it (an existing one, or one it builds with the :class:`Builder`, which records the node's source
position on everything it adds), or None. A replacement is taken only when it has exactly the node's type, so
a rule cannot change what a value is, only how it is computed. Each sweep visits the nodes in the graph's
cached topological order; sweeps repeat until one changes nothing (a fixpoint), so a rewrite that exposes
another match is followed up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..builder import Builder
from ..graph import Graph, Node
from .patterns import replace_with

Rule = Callable[[Builder, Node], int | None]
RuleSet = Mapping[str, Rule]

MAX_SWEEPS = 100  # a rule set that keeps changing the graph after this many sweeps is a bug in a rule


def rewrite(graph: Graph, rules: RuleSet) -> Graph:
    """A copy of ``graph`` with ``rules`` applied to a fixpoint."""
    g = graph.copy()
    b = Builder(g)
    for _ in range(MAX_SWEEPS):
        if not _sweep(g, b, rules):
            return g
    raise RuntimeError(f"rewrite rules for {sorted(rules)} did not reach a fixpoint in {MAX_SWEEPS} sweeps")


def _sweep(g: Graph, b: Builder, rules: RuleSet) -> bool:
    changed = False
    for node_id in g.order():
        if node_id not in g:  # replaced earlier in this sweep
            continue
        node = g.node(node_id)
        rule = rules.get(node.op)
        if rule is None:
            continue
        with b.at(node.line, node.col, origin=node.origin):
            target = rule(b, node)
        if target is not None and target != node_id and g.node(target).type == node.type:
            replace_with(g, node, target)
            changed = True
    return changed
