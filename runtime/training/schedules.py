"""Learning-rate schedules, applied per epoch (epochs count from 0): each is declared once here, with its
arguments' defaults from the train block's schema.

- constant:               lr
- step(every, gamma):     lr * gamma ^ floor(epoch / every)
- exponential(gamma):     lr * gamma ^ epoch
"""

from __future__ import annotations

from collections.abc import Callable

from gradc.dsl.diagnostics import GradcError, did_you_mean
from gradc.dsl.train_schema import SCHEDULES as DEFAULTS

Schedule = Callable[[float, int, dict[str, float]], float]

SCHEDULES: dict[str, Schedule] = {
    "constant": lambda lr, epoch, a: lr,
    "step": lambda lr, epoch, a: lr * a["gamma"] ** (epoch // int(a["every"])),
    "exponential": lambda lr, epoch, a: lr * a["gamma"] ** epoch,
}
assert set(SCHEDULES) == set(DEFAULTS), "every schedule of the train block is declared here"


def learning_rate(name: str, base: float, epoch: int, **args: float) -> float:
    """The learning rate in force during ``epoch`` under schedule ``name``."""
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
    return float(SCHEDULES[name](base, epoch, values))
