"""A compiled program: a graph for a target, with the parameters it owns.

``run`` evaluates every output and loss, and with ``grad=True`` the gradient of the objective with
respect to every parameter and floating-point input, under the keys ``grad/<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .feeds import check_feeds
from .params import check_params
from .reference import evaluate

TARGETS = ("reference",)


class Program:
    def __init__(self, graph: Graph, params: Mapping[str, np.ndarray], target: str = "reference"):
        if target not in TARGETS:
            raise GradcError(f"unknown target '{target}' (targets: {', '.join(TARGETS)})")
        self.graph = graph
        self.target = target
        self.params: dict[str, np.ndarray] = check_params(graph, params)

    @property
    def name(self) -> str:
        return self.graph.model_name

    def run(self, inputs: Mapping[str, np.ndarray], grad: bool = False) -> dict[str, np.ndarray]:
        if grad and self.graph.objective is None:
            raise GradcError("nothing to differentiate: the model has no loss and no single scalar output")
        feeds, _ = check_feeds(self.graph, inputs)
        wanted: dict[str, int] = {**self.graph.outputs, **self.graph.losses}
        if grad:
            wanted.update({f"grad/{name}": node_id for name, node_id in self.graph.grads.items()})
        values = evaluate(self.graph, feeds, self.params, wanted.values())
        return {key: values[node_id] for key, node_id in wanted.items()}

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        self.params = check_params(self.graph, values)
