"""The optimization pipeline: named passes, each a function from graph to graph.

``gradc graph --stage NAME`` shows the graph after any of them: ``parsed`` is the front end's graph,
``autodiff`` the graph right after the gradients are added, ``optimized`` the end of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradc.dsl.diagnostics import GradcError

from ..autodiff import autodiff
from ..fusion import fuse
from ..graph import Graph
from .attention_lse import fuse_attention_lse
from .cse import cse
from .dce import dce
from .expand import expand
from .fold import constant_fold
from .scan_hoist import hoist_accumulators
from .scan_weights import transpose_scan_weights
from .simplify import simplify
from .stabilize import stabilize

Pass = Callable[[Graph], Graph]


@dataclass(frozen=True)
class Stage:
    name: str
    run: Pass
    doc: str


PIPELINE: tuple[Stage, ...] = (
    Stage("stabilize", stabilize, "numerically stable rewrites (log_softmax, bce_with_logits, softplus)"),
    Stage("fold", constant_fold, "evaluate nodes whose operands are constants"),
    Stage("simplify", simplify, "algebraic identities: x*1, x+0, x^1, -(-x); outside training, dropout is the identity "
          "and batchnorm uses its running statistics"),
    Stage("cse", cse, "merge equal subexpressions"),
    Stage("dce", dce, "drop values nothing depends on"),
    Stage("autodiff", autodiff, "reverse-mode gradients of the objective, added to the graph"),
    Stage("hoist-scan", hoist_accumulators, "sums that a scan's gradient adds up over the steps (its weights' "
          "gradients) taken after the loop, as one product over every step and example"),
    Stage("scan-weights", transpose_scan_weights, "a scan's weights that its step multiplies by on the right "
          "enter it transposed, in the layout the step's few-row products read fastest"),
    Stage("fold-grad", constant_fold, "constant folding in the backward pass"),
    Stage("simplify-grad", simplify, "algebraic identities in the backward pass"),
    Stage("cse-grad", cse, "reuse forward values in the backward pass"),
    Stage("attention-lse", fuse_attention_lse, "attention's forward writes the log-sum-exp its gradient reads "
          "(one pass over the keys, not two)"),
    Stage("dce-grad", dce, "drop what the gradients did not need"),
)

# From the optimized graph to the kernels: what the compile driver's ``schedule`` runs. The optimized graph is
# what the reference executor runs (composites with their NumPy forwards); the targets get the fused one.
SCHEDULE_PIPELINE: tuple[Stage, ...] = (
    Stage("expand", expand, "composite ops (softmax, log_softmax, the losses) replaced by their primitives; "
          "pieces built twice (a loss's softmax and its gradient's) merged"),
    Stage("fused", fuse, "elementwise fusion: the graph partitioned into loop and op kernels"),
)

STAGE_NAMES: tuple[str, ...] = ("parsed", *(s.name for s in PIPELINE), "optimized",
                                *(s.name for s in SCHEDULE_PIPELINE))


def run_stages(graph: Graph, stages: tuple[Stage, ...], until: str) -> Graph:
    """Run ``stages``, then the schedule stages, in order; return the graph after stage ``until``
    (``optimized``: after ``stages``)."""
    for stage in (*stages, Stage("optimized", lambda g: g, ""), *SCHEDULE_PIPELINE):
        graph = stage.run(graph)
        if stage.name == until:
            return graph
    raise ValueError(f"unknown stage {until!r}")


def run_pipeline(graph: Graph, until: str = "optimized") -> Graph:
    """Run the passes in order and return the graph after stage ``until``; ``fused`` is the end of the
    schedule stages (the kernel IR)."""
    if until not in STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGE_NAMES)}")
    if until == "parsed":
        return graph
    if graph.length_symbols:
        names = ", ".join(graph.length_symbols)
        raise GradcError(f"model '{graph.model_name}' has the symbolic length {names}: the passes need its size "
                         f"(ModelSpec.bind, or gradc.compile(..., dims={{...}}); on the command line --dim)")
    return run_stages(graph, PIPELINE, until)


def schedule_graph(graph: Graph) -> Graph:
    """The schedule stages of an optimized graph: composites expanded, then fused into kernels."""
    return run_stages(graph, (), SCHEDULE_PIPELINE[-1].name)


def optimize(graph: Graph) -> Graph:
    return run_pipeline(graph, "optimized")
