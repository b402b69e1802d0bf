"""A compiled program: a graph for a target, with the parameters it owns.

``run`` evaluates every output and loss, and with ``grad=True`` the gradient of the objective with
respect to every parameter and floating-point input, under the keys ``grad/<name>``. ``step`` runs one
training step in place (plain SGD, or the optimizer chosen with ``set_optimizer``) and returns the loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .backends import BACKENDS
from .feeds import FeedSpec
from .optimizer_state import OptimizerState
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
        self.optimizer = OptimizerState.create("sgd", self.params)

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

    def set_optimizer(self, name: str = "sgd", **hyperparameters: float) -> OptimizerState:
        """Train with ``name`` (sgd, momentum, nesterov, adagrad, rmsprop, adam) from now on; its state starts
        at zero. Unnamed hyperparameters take the train block's defaults."""
        self.optimizer = OptimizerState.create(name, self.params, **hyperparameters)
        return self.optimizer

    def step(self, inputs: Mapping[str, np.ndarray], lr: float | None = None, validate: bool = True) -> float:
        """One training step, in place: forward, backward and the optimizer's update of the parameters (plain
        SGD unless :meth:`set_optimizer` chose another), in one native call on the cpu target. ``lr``, when
        given, becomes the optimizer's learning rate from this step on (a schedule sets it each epoch).
        Returns the loss before the update. ``validate=False`` skips the scans of the values (NaN, label
        range) for data that was checked when it was loaded; shapes and dtypes are always checked."""
        if self.graph.objective is None:
            raise GradcError("nothing to train: the model has no loss")
        feeds = self._feeds(inputs, validate)
        if lr is not None:
            self.optimizer.hyper["lr"] = float(lr)
        self.optimizer.t += 1
        return self.backend.train_step(feeds, self.params, self.optimizer)

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        self.params = check_params(self.graph, values)
        self.optimizer = OptimizerState.create(self.optimizer.definition.name, self.params, **self.optimizer.hyper)
