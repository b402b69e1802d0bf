"""A compiled program: a graph for a target, with the parameters it owns.

``run`` evaluates every output and loss, and with ``grad=True`` the gradient of the objective with
respect to every parameter and floating-point input, under the keys ``grad/<name>``. ``step`` runs one
plain-SGD training step in place and returns the loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .backends import BACKENDS
from .feeds import FeedSpec
from .params import check_params

TARGETS = tuple(BACKENDS)


class Program:
    def __init__(self, graph: Graph, params: Mapping[str, np.ndarray], target: str = "cpu",
                 use_cache: bool = True):
        if target not in BACKENDS:
            raise GradcError(f"unknown target '{target}' (targets: {', '.join(TARGETS)})")
        self.graph = graph
        self.target = target
        self.params: dict[str, np.ndarray] = check_params(graph, params)
        self.backend = BACKENDS[target](graph, use_cache=use_cache)
        self.feed_spec = FeedSpec.from_graph(graph)

    @property
    def name(self) -> str:
        return self.graph.model_name

    def _feeds(self, inputs: Mapping[str, np.ndarray], validate: bool = True) -> dict[str, np.ndarray]:
        return self.feed_spec.check(inputs, scan_values=validate)

    def run(self, inputs: Mapping[str, np.ndarray], grad: bool = False) -> dict[str, np.ndarray]:
        if grad and self.graph.objective is None:
            raise GradcError("nothing to differentiate: the model has no loss and no single scalar output")
        feeds = self._feeds(inputs)
        if grad:
            return self.backend.gradients(feeds, self.params)
        return self.backend.forward(feeds, self.params)

    def step(self, inputs: Mapping[str, np.ndarray], lr: float, validate: bool = True) -> float:
        """One training step of plain SGD, in place: forward, backward, ``p -= lr * grad``. Returns the loss
        before the update. ``validate=False`` skips the scans of the values (NaN, label range) for data
        that was checked when it was loaded; shapes and dtypes are always checked."""
        if self.graph.objective is None:
            raise GradcError("nothing to train: the model has no loss")
        return self.backend.sgd_step(self._feeds(inputs, validate), self.params, lr)

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        self.params = check_params(self.graph, values)
