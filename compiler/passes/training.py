"""Training mode as graph passes, run before the optimization pipeline when a program trains.

- ``dropout_masks``: each ``dropout(x, p)`` becomes ``x * mask``, where ``mask`` is a new input named
  ``dropout<k>.mask`` with x's type. The runtime feeds it every step with independent draws of
  ``0`` (probability p) or ``1/(1-p)`` (inverted dropout, so evaluation needs no rescaling), from the
  run's seed. Outside training the pipeline's ``simplify`` pass removes dropout instead.
- ``weight_decay`` (see :mod:`.regularize`): the objective gains lambda/2 * sum of squared weights.

``training_stages(weight_decay)`` lists them as named stages, so ``gradc graph --train --stage NAME``
shows the training graph after each one.
"""

from __future__ import annotations

from ..builder import Builder, Ref
from ..fusion import fuse
from ..graph import Graph
from .pipeline import PIPELINE, STAGE_NAMES, Stage
from .regularize import weight_decay

MASK_SUFFIX = ".mask"


def dropout_masks(graph: Graph) -> Graph:
    """Replace every dropout by a product with a mask input fed at run time."""
    g = graph.copy()
    b = Builder(g)
    for k, node_id in enumerate((n for n in g.order() if g.node(n).op == "dropout"), start=1):
        node = g.node(node_id)
        with b.at(node.line, node.col, origin=node.origin):
            mask = g.add("input", (), node.type, {"dropout": float(node.attrs["p"])}, line=node.line,
                         col=node.col, name=f"dropout{k}{MASK_SUFFIX}", origin=node.origin)
            product = b.mul(Ref(node.inputs[0]), Ref(mask))
        g.replace_uses(node_id, product)
        g.remove(node_id)
    return g


def dropout_rates(graph: Graph) -> dict[str, float]:
    """Mask input name -> drop probability, for the inputs that ``dropout_masks`` added."""
    return {name: graph.node(i).attrs["dropout"] for name, i in graph.inputs().items()
            if "dropout" in graph.node(i).attrs}


def training_stages(decay: float = 0.0) -> tuple[Stage, ...]:
    """The passes of a training graph, in order: training mode, weight decay, then the pipeline."""
    return (
        Stage("train-mode", dropout_masks, "dropout becomes x * mask, the mask fed each step"),
        Stage("weight-decay", weight_decay(decay), f"objective + {decay:g}/2 * sum of squared weights"),
        *PIPELINE,
    )


TRAINING_STAGE_NAMES: tuple[str, ...] = ("parsed", "train-mode", "weight-decay", *STAGE_NAMES[1:])


def training_graph(graph: Graph, decay: float = 0.0, until: str = "optimized") -> Graph:
    """The graph a program trains with, after stage ``until`` (default: every stage; ``fused`` adds the
    kernel IR)."""
    if until not in TRAINING_STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(TRAINING_STAGE_NAMES)}")
    if until == "parsed":
        return graph
    for stage in training_stages(decay):
        graph = stage.run(graph)
        if stage.name == until:
            return graph
    return fuse(graph) if until == "fused" else graph
