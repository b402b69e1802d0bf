"""Check analytic gradients against central finite differences, in float64.

For each parameter and floating-point input, up to ``max_elements`` entries (all of them for small
tensors) are perturbed by ``±h`` with ``h = 1e-6 * max(1, |x|)``; the numeric derivative
``(f(x+h) - f(x-h)) / 2h`` is compared with the analytic one. The error of an entry is
``|analytic - numeric| / max(|analytic|, |numeric|, 1e-4 * max(1, |f|))``: relative, except that entries far
below the objective's scale are compared against that scale, where finite differences are only noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gradc.compiler.driver import prepare_float64
from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .feeds import check_feeds
from .params import check_params, init_params
from .reference import evaluate
from .sampling import random_inputs

DEFAULT_TOLERANCE = 1e-5
PARAM_JITTER = 0.1


@dataclass(frozen=True)
class TensorCheck:
    name: str
    kind: str  # "param" or "input"
    checked: int
    size: int
    max_error: float
    max_abs_error: float

    def passed(self, tolerance: float = DEFAULT_TOLERANCE) -> bool:
        return self.max_error <= tolerance


def gradcheck(
    graph: Graph,
    inputs: Mapping[str, np.ndarray] | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
    batch: int = 4,
    max_elements: int = 64,
) -> list[TensorCheck]:
    """Gradient check of a parsed-stage graph; returns one :class:`TensorCheck` per differentiated tensor.

    Without ``params``, parameters are their initial values plus N(0, 0.1^2) noise, so that zero-initialized
    weights do not put every ReLU exactly at its kink.
    """
    g = prepare_float64(graph)
    if g.objective is None:
        raise GradcError("nothing to differentiate: the model has no loss and no single scalar output")
    rng = np.random.default_rng(seed)
    if inputs is None:
        inputs = random_inputs(g, batch, rng)
    feeds = check_feeds(g, inputs)
    if params is None:
        params = {k: v + PARAM_JITTER * rng.normal(size=v.shape) for k, v in init_params(g, seed).items()}
    values = {
        "param": {k: np.array(v) for k, v in check_params(g, params).items()},
        "input": {k: np.array(v) for k, v in feeds.items()},
    }  # private contiguous copies: entries are perturbed in place

    def objective() -> float:
        return float(evaluate(g, values["input"], values["param"], [g.objective])[g.objective])

    analytic = evaluate(g, values["input"], values["param"], g.grads.values())
    scale = 1e-4 * max(1.0, abs(objective()))
    reports = []
    for name, grad_id in g.grads.items():
        kind = "param" if name in values["param"] else "input"
        tensor = values[kind][name]
        flat = tensor.reshape(-1)  # a view: perturbing it perturbs the tensor the executor reads
        count = min(flat.size, max_elements)
        picks = np.arange(flat.size) if count == flat.size else rng.choice(flat.size, count, replace=False)
        exact = analytic[grad_id].reshape(-1)
        worst = worst_abs = 0.0
        for index in picks:
            original = flat[index]
            h = 1e-6 * max(1.0, abs(original))
            flat[index] = original + h
            up = objective()
            flat[index] = original - h
            down = objective()
            flat[index] = original
            numeric = (up - down) / (2 * h)
            diff = abs(exact[index] - numeric)
            worst_abs = max(worst_abs, diff)
            worst = max(worst, diff / max(abs(exact[index]), abs(numeric), scale))
        reports.append(TensorCheck(name, kind, int(count), int(flat.size), float(worst), float(worst_abs)))
    return reports
