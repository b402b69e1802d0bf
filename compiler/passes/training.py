"""Training mode as graph passes, run before the optimization pipeline when a program trains.

- ``dropout_masks``: each ``dropout(x, p)`` becomes ``x * mask``, where ``mask`` is a new input named
  ``dropout<k>.mask`` with x's type. The runtime feeds it every step with independent draws of
  ``0`` (probability p) or ``1/(1-p)`` (inverted dropout, so evaluation needs no rescaling), from the
  run's seed. Outside training the pipeline's ``simplify`` pass removes dropout instead.
- ``attention_seeds``: each ``attention(..., dropout=p)`` with p > 0 gets a fifth operand, a new integer
  scalar input named ``attention<k>.seed``, which the runtime feeds a fresh draw every step; the kernels hash
  it with each weight's place to decide what to drop (compiler/ops/attention.py). Without a seed (outside
  training) attention drops nothing. The input records how many attention entries a batch row holds, for a
  data-parallel shard's entry offset (the seed's upper bits).
- ``weight_decay`` (see :mod:`.regularize`): the objective gains lambda/2 * sum of squared weights.
- ``clip_norm`` (see :mod:`.clipping`), right after autodiff: the parameters' gradients scaled down to a
  global norm of at most the setting.

- ``batch_statistics``: batchnorm normalizes with the batch's mean and variance (outside training, with the
  running statistics, which the runtime estimates from the training data after each epoch).

``training_stages(weight_decay, clip_norm)`` lists them as named stages, so ``gradc graph --train --stage
NAME`` shows the training graph after each one.
"""

from __future__ import annotations

import math

from ..builder import Builder, Ref
from ..graph import Graph
from ..types import TensorType
from .clipping import clip_gradient_norm
from .data_parallel import data_parallel
from .pipeline import PIPELINE, STAGE_NAMES, Stage, run_stages
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


SEED_SUFFIX = ".seed"


def attention_seeds(graph: Graph) -> Graph:
    """Give every attention with dropout a seed input fed at run time (and a mask of zeros where it had none,
    since the seed is the operand after the mask)."""
    g = graph.copy()
    b = Builder(g)
    dropping = [n for n in g.order() if g.node(n).op == "attention" and g.node(n).attrs["dropout"] > 0.0]
    for k, node_id in enumerate(dropping, start=1):
        node = g.node(node_id)
        with b.at(node.line, node.col, origin=node.origin):
            lead = g.node(node.inputs[0]).type.shape[:-2]
            per_row = math.prod(lead[1:]) if lead and isinstance(lead[0], str) else 0
            seed = g.add("input", (), TensorType((), "i64"), {"dropout": float(node.attrs["dropout"]),
                                                               "entries_per_row": per_row},
                         line=node.line, col=node.col, name=f"attention{k}{SEED_SUFFIX}", origin=node.origin)
            operands = [Ref(i) for i in node.inputs]
            if len(operands) == 3:
                operands.append(b.const(0.0, node.type.dtype))
            seeded = b.attention(*operands, Ref(seed), **node.attrs)
        g.replace_uses(node_id, seeded)
        g.remove(node_id)
    return g


BATCH_SUFFIX = ".batch"


def batch_statistics(graph: Graph) -> Graph:
    """Batchnorm normalizes with the batch's statistics in training: each ``running_stat(batch, running)``
    becomes ``batch``, which is also exposed as the output ``<running>.batch`` so the runtime can estimate
    the running statistics from the training data."""
    g = graph.copy()
    for node_id in [n for n in g.order() if g.node(n).op == "running_stat"]:
        batch, running = g.node(node_id).inputs
        g.replace_uses(node_id, batch)
        g.remove(node_id)
        g.outputs[g.node(running).name + BATCH_SUFFIX] = batch
    return g


def train_mode(graph: Graph) -> Graph:
    """Dropout masks and batch statistics: the graph as it behaves in training."""
    return batch_statistics(attention_seeds(dropout_masks(graph)))


def statistic_outputs(graph: Graph) -> dict[str, str]:
    """Output name -> the running-statistic parameter it estimates, for the outputs ``batch_statistics``
    added."""
    params = graph.params()
    return {name: name.removesuffix(BATCH_SUFFIX) for name in graph.outputs
            if name.endswith(BATCH_SUFFIX) and name.removesuffix(BATCH_SUFFIX) in params}


def attention_entries_per_row(graph: Graph) -> dict[str, int]:
    """Seed input name -> how many of its attention's entries (flattened leading dimensions) one batch row
    holds (0 where the leading dimensions do not start with the batch): what a shard of the batch starting at
    row r offsets its entries by (r times it), so that its dropout is the whole batch's."""
    return {name: graph.node(i).attrs["entries_per_row"] for name, i in graph.inputs().items()
            if "entries_per_row" in graph.node(i).attrs}


def dropout_rates(graph: Graph) -> dict[str, float]:
    """Mask or seed input name -> drop probability, for the inputs that ``dropout_masks`` and
    ``attention_seeds`` added."""
    return {name: graph.node(i).attrs["dropout"] for name, i in graph.inputs().items()
            if "dropout" in graph.node(i).attrs}


def training_stages(decay: float = 0.0, clip: float = 0.0, data_parallel_step: bool = False) -> tuple[Stage, ...]:
    """The passes of a training graph, in order: training mode, weight decay, the data-parallel rewrite (for
    a rank of several), then the pipeline with gradient clipping right after autodiff."""

    clipping = Stage("clip-norm", clip_gradient_norm(clip), f"parameter gradients scaled to a global norm of at "
                     f"most {clip:g}" if clip else "gradient clipping (off: clip_norm is 0)")
    pipeline = []
    for stage in PIPELINE:
        pipeline.append(stage)
        if stage.name == "autodiff":
            pipeline.append(clipping)
    return (
        Stage("train-mode", train_mode, "dropout becomes x * mask, the mask fed each step; attention with dropout "
              "gets a seed fed each step; batchnorm uses batch statistics"),
        Stage("weight-decay", weight_decay(decay), f"objective + {decay:g}/2 * sum of squared weights"),
        Stage("data-parallel", data_parallel(data_parallel_step),
              "objective * this rank's share of the batch; batch statistics summed over the ranks"
              if data_parallel_step else "data-parallel rewrite (off: one process)"),
        *pipeline,
    )


TRAINING_STAGE_NAMES: tuple[str, ...] = ("parsed", *(s.name for s in training_stages()), *STAGE_NAMES[
    STAGE_NAMES.index("optimized"):])


def training_graph(graph: Graph, decay: float = 0.0, until: str = "optimized", clip: float = 0.0,
                   data_parallel_step: bool = False) -> Graph:
    """The graph a program trains with, after stage ``until`` (default: the optimization pipeline; the
    schedule stages follow, up to ``fused``, the kernel IR)."""
    if until not in TRAINING_STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(TRAINING_STAGE_NAMES)}")
    if until == "parsed":
        return graph
    return run_stages(graph, training_stages(decay, clip, data_parallel_step), until)
