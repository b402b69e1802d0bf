"""Learning-rate schedules: each is declared once here, with its arguments' defaults from the train block's
schema. ``epoch`` counts from 0; the per-step schedules also see how far the epoch has gone.

- constant:                  lr
- step(every, gamma):        lr * gamma ^ floor(epoch / every)              (per epoch)
- exponential(gamma):        lr * gamma ^ epoch                              (per epoch)
- warmup(epochs):            lr * min(1, p / epochs)                         (per step)
- cosine(final, warmup):     a linear warmup over ``warmup`` epochs, then from lr down to final * lr along
                             half a cosine over the remaining epochs         (per step)

For the per-step schedules, ``p`` is the training's position in epochs at the end of the step (so the first
step of a warmup trains at a small rate, never 0) and the cosine's progress ``q`` is taken at the step's
start (so the last step is not wasted at the final rate): with E epochs in all and W of warmup,
q = (epoch + (step - 1) / steps - W) / (E - W), lr * (final + (1 - final) * (1 + cos(pi * q)) / 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from gradc.dsl.diagnostics import GradcError, did_you_mean
from gradc.dsl.train_schema import SCHEDULES as DEFAULTS


@dataclass(frozen=True)
class Position:
    """Where a step is in the run: its epoch (from 0), the step within the epoch (from 1) of ``steps``, and the
    run's number of epochs."""

    epoch: int
    step: int = 1
    steps: int = 1
    epochs: int = 1

    @property
    def end(self) -> float:
        """Epochs done when the step ends."""
        return self.epoch + self.step / self.steps

    @property
    def start(self) -> float:
        """Epochs done when the step starts."""
        return self.epoch + (self.step - 1) / self.steps


Schedule = Callable[[float, Position, dict[str, float]], float]


def _warmup(lr: float, at: Position, a: dict[str, float]) -> float:
    return lr * min(1.0, at.end / a["epochs"])


def _cosine(lr: float, at: Position, a: dict[str, float]) -> float:
    warmup = a["warmup"]
    if at.end <= warmup:
        return lr * at.end / warmup
    span = at.epochs - warmup
    progress = min(1.0, max(0.0, (at.start - warmup) / span)) if span > 0 else 1.0
    return lr * (a["final"] + (1.0 - a["final"]) * (1.0 + math.cos(math.pi * progress)) / 2.0)


SCHEDULES: dict[str, Schedule] = {
    "constant": lambda lr, at, a: lr,
    "step": lambda lr, at, a: lr * a["gamma"] ** (at.epoch // int(a["every"])),
    "exponential": lambda lr, at, a: lr * a["gamma"] ** at.epoch,
    "warmup": _warmup,
    "cosine": _cosine,
}
assert set(SCHEDULES) == set(DEFAULTS), "every schedule of the train block is declared here"


def learning_rate(name: str, base: float, at: Position | int, **args: float) -> float:
    """The learning rate of the step at ``at`` (an epoch number: that epoch's first step) under ``name``."""
    if name not in SCHEDULES:
        raise GradcError(f"unknown schedule '{name}'{did_you_mean(name, SCHEDULES)} "
                         f"(schedules: {', '.join(SCHEDULES)})")
    values = dict(DEFAULTS[name])
    unknown = set(args) - set(values)
    if unknown:
        raise GradcError(f"unknown argument '{sorted(unknown)[0]}' for schedule {name}")
    values.update(args)
    if name == "step" and int(values["every"]) < 1:
        raise GradcError("schedule step needs every >= 1")
    position = at if isinstance(at, Position) else Position(int(at))
    return float(SCHEDULES[name](base, position, values))
