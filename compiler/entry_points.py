"""Entry points: the functions a compiled program offers, and the nodes each computes.

``forward`` returns outputs and losses; ``gradients`` also every ``grad/<name>``; ``param_gradients`` the
objective the gradients are of (:data:`OBJECTIVE_KEY`: the losses plus any weight decay) and the parameters'
gradients alone (a data-parallel step's first half: no outputs, no input gradients); ``train_<optimizer>`` (one per
optimizer of :mod:`gradc.compiler.optimizers`) computes the objective and every parameter's gradient and
updates the parameters in place. The schedule plans each one; targets render each as a function.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph
from .optimizers import OPTIMIZERS, OptimizerDef

TRAIN_PREFIX = "train_"
DEFAULT_ENTRY_POINTS = ("forward", "gradients", "train_sgd")
PARAM_GRADIENTS = "param_gradients"  # the objective and the parameters' gradients: a training step's first half
OBJECTIVE_KEY = "objective/total"  # not an identifier: no output or loss of a model file can be named so


@dataclass(frozen=True)
class EntryPoint:
    name: str
    returns: tuple[str, ...]  # result keys: output and loss names, grad/<name>; train_* return the objective
    optimizer: OptimizerDef | None = None


def entry_points(graph: Graph) -> dict[str, EntryPoint]:
    """forward, gradients and, when the model has an objective and parameters, a train_<optimizer> each."""
    points = {
        "forward": EntryPoint("forward", (*graph.outputs, *graph.losses)),
        "gradients": EntryPoint("gradients", (*graph.outputs, *graph.losses, *(f"grad/{n}" for n in graph.grads))),
    }
    if graph.objective is not None and graph.params():
        points[PARAM_GRADIENTS] = EntryPoint(PARAM_GRADIENTS, (OBJECTIVE_KEY, *(f"grad/{n}" for n in graph.params())))
        for optimizer in OPTIMIZERS.values():
            name = TRAIN_PREFIX + optimizer.name
            points[name] = EntryPoint(name, ("objective",), optimizer)
    return points


def wanted_nodes(graph: Graph, point: EntryPoint, param_names: list[str] | None = None) -> list[int]:
    """The node ids an entry point computes: its results, or the objective and every parameter's gradient
    (``param_names``: the graph's parameters in order, when the caller has them already)."""
    if point.optimizer is not None:
        names = param_names if param_names is not None else list(graph.params())
        return [graph.objective, *(graph.grads[n] for n in names)]
    table = {**graph.outputs, **graph.losses, **{f"grad/{n}": i for n, i in graph.grads.items()},
             OBJECTIVE_KEY: graph.objective}
    return [table[key] for key in point.returns]


def optimizer_args(graph: Graph, optimizer: OptimizerDef | None) -> list[str]:
    """State arrays s<k>_<j> (parameter k, state j), hyperparameters h_<name>, the step number t."""
    if optimizer is None:
        return []
    states = [f"s{k}_{j}" for k in range(len(graph.params())) for j in range(len(optimizer.state))]
    return [*states, *(f"h_{h}" for h in optimizer.hyperparameters), "t"]
