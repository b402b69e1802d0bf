"""The ``data-parallel`` training stage: the graph each rank of a data-parallel world trains with.

Each rank holds rows start..stop of a global batch of B rows and is fed its share s = (stop - start) / B as
the scalar input ``world.share``. Two rewrites make the ranks' summed gradients the gradients of one process
training on the whole batch:

- the objective becomes s * objective: a loss is a mean over the rank's rows, so s times it is the rank's part
  of the whole batch's mean, and the parts add up to it (weight decay, the same on every rank, once: the
  shares sum to 1). The data-parallel step sums the gradients (and this objective) over the ranks;
- batchnorm's batch statistics become ``ranks_sum(s * statistic)``: a mean over the rank's rows times s, summed
  over the ranks, is the mean over the whole batch (the variance likewise, of the rows centred on the global
  mean), so every rank normalizes with the global batch's statistics (synchronized batchnorm). Their gradients
  flow back through ``ranks_sum``, whose gradient is itself.

In a world of one rank (s = 1, ``ranks_sum`` the identity) the graph computes what the plain training graph
computes. Without ``enabled`` the stage changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..builder import Builder, Ref
from ..graph import Graph
from ..types import TensorType

SHARE_INPUT = "world.share"


def data_parallel(enabled: bool) -> Callable[[Graph], Graph]:
    def rewrite(graph: Graph) -> Graph:
        from .training import BATCH_SUFFIX  # (training lists this stage among its own)

        g = graph.copy()
        if not enabled or g.objective is None:
            return g
        b = Builder(g)
        objective = g.node(g.objective)
        share = g.add("input", (), TensorType((), g.float_dtype), {"share": True}, line=objective.line,
                      col=objective.col, name=SHARE_INPUT, origin="data-parallel")
        for name in [n for n in g.outputs if n.endswith(BATCH_SUFFIX)]:
            _globalize(g, b, g.outputs[name], share)
        with b.at(objective.line, objective.col, origin="data-parallel"):
            g.objective = b.mul(Ref(g.objective), b.cast_to(Ref(share), objective.type.dtype))
        return g

    return rewrite


def _globalize(g: Graph, b: Builder, statistic: int, share: int) -> None:
    """Every use of ``statistic`` (and the output that exposes it) reads ranks_sum(share * statistic)."""
    node = g.node(statistic)
    readers = list(g.dag.successors(statistic))
    with b.at(node.line, node.col, origin=node.origin or "batchnorm"):
        total = b.ranks_sum(b.mul(Ref(statistic), b.cast_to(Ref(share), node.type.dtype)))
    for reader in readers:
        g.update(reader, inputs=tuple(int(total) if i == statistic else i for i in g.node(reader).inputs))
    for key, value in list(g.outputs.items()):
        if value == statistic:
            g.outputs[key] = int(total)
