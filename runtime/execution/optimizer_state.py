"""The optimizer a program trains with: its hyperparameters, its per-parameter state and the step count.

The state lives with the program (arrays shaped like the parameters), so each training step, compiled or
reference, updates parameters and state in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gradc.compiler.optimizers import OPTIMIZERS, OptimizerDef
from gradc.dsl.diagnostics import GradcError, did_you_mean
from gradc.dsl.train_schema import OPTIMIZERS as DEFAULTS


@dataclass
class OptimizerState:
    definition: OptimizerDef
    hyper: dict[str, float]
    state: dict[str, list[np.ndarray]] = field(default_factory=dict)
    t: int = 0  # steps taken

    @classmethod
    def create(cls, name: str, params: Mapping[str, np.ndarray], **hyper: float) -> OptimizerState:
        definition = OPTIMIZERS.get(name)
        if definition is None:
            raise GradcError(f"unknown optimizer '{name}'{did_you_mean(name, OPTIMIZERS)} "
                             f"(optimizers: {', '.join(OPTIMIZERS)})")
        values = dict(DEFAULTS[name])
        for key, value in hyper.items():
            if key not in values:
                raise GradcError(f"unknown argument '{key}' for optimizer {name}{did_you_mean(key, values)} "
                                 f"({name} takes {', '.join(values)})")
            values[key] = float(value)
        state = {p: [np.zeros_like(v) for _ in definition.state] for p, v in params.items()}
        return cls(definition, {k: float(v) for k, v in values.items()}, state)

    def arrays(self, order: list[str]) -> list[np.ndarray]:
        """The state arrays in the compiled entry point's order: parameter by parameter."""
        return [a for name in order for a in self.state[name]]

    def hyperparameters(self) -> list[float]:
        return [self.hyper[h] for h in self.definition.hyperparameters]
