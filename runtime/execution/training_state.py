"""Training state: everything a training run changes, held apart from the compiled program.

A :class:`~gradc.runtime.execution.program.Program` is code (the graphs, their compiled entry points, the feed checks);
its :class:`TrainingState` is data: the parameters, the optimizer's state and step count, the schedule's
position (epochs trained) and the random stream that draws dropout masks. A checkpoint is a saved state; a
split step (``Program.gradients``, an exchange such as an all-reduce, then ``Program.apply_update``) changes
only the state; two processes with the same program and equal states take identical steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .optimizer_state import OptimizerState


def mask_stream(seed: int, epoch: int | None = None) -> np.random.Generator:
    """The dropout masks' random stream: one per run seed, restarted per epoch in ``fit`` (so a resumed run
    draws the masks an uninterrupted one would)."""
    return np.random.default_rng([seed, 2] if epoch is None else [seed, epoch, 2])


@dataclass
class TrainingState:
    params: dict[str, np.ndarray]
    optimizer: OptimizerState
    masks: np.random.Generator = field(default_factory=lambda: mask_stream(0))
    epoch: int = 0  # epochs trained: the learning-rate schedule's position

    @classmethod
    def initial(cls, params: dict[str, np.ndarray], seed: int = 0) -> TrainingState:
        """Fresh state for ``params``: plain SGD with no steps taken, epoch 0."""
        return cls(params, OptimizerState.create("sgd", params), mask_stream(seed))

    def reset_optimizer(self, name: str, **hyperparameters: float) -> OptimizerState:
        """A new optimizer with zero state (its hyperparameters over the train block's defaults)."""
        self.optimizer = OptimizerState.create(name, self.params, **hyperparameters)
        return self.optimizer

    def replace_params(self, params: Mapping[str, np.ndarray]) -> None:
        """New parameter values (already checked against the graph); the optimizer keeps its kind and
        hyperparameters and restarts from zero state, since its moments belonged to the old values."""
        self.params = dict(params)
        self.optimizer = OptimizerState.create(self.optimizer.definition.name, self.params, **self.optimizer.hyper)
