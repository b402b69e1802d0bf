"""Optimizers, declared once: hyperparameters (defaults from the train block's schema), per-parameter state,
the NumPy reference update, and the kernel-library routine the compiled training step calls.

Every update runs in place, inside the same native call as the forward and backward passes. ``t`` is the
1-based number of the step being taken (Adam's bias correction uses it). The formulas, with g the gradient:

- sgd:      p -= lr g
- momentum: v = mu v - lr g;  p += v
- nesterov: v' = mu v - lr g;  p += -mu v + (1 + mu) v';  v = v'
- adagrad:  s += g^2;  p -= lr g / (sqrt(s) + eps)
- rmsprop:  s = rho s + (1 - rho) g^2;  p -= lr g / (sqrt(s) + eps)
- adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr m^ / (sqrt(v^) + eps),
            m^ = m / (1 - b1^t), v^ = v / (1 - b2^t)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gradc.dsl.train_schema import OPTIMIZERS as DEFAULTS

Update = Callable[[np.ndarray, np.ndarray, list[np.ndarray], dict[str, float], int], None]


@dataclass(frozen=True)
class OptimizerDef:
    name: str
    state: tuple[str, ...]  # per-parameter arrays, zero at the start
    reference: Update
    routine: str  # the kernel library's update: routine(p, g, *state, *hyperparameters, t)

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        return tuple(DEFAULTS[self.name])


def _sgd(p, g, state, h, t):
    p -= h["lr"] * g


def _momentum(p, g, state, h, t):
    (v,) = state
    v *= h["mu"]
    v -= h["lr"] * g
    p += v


def _nesterov(p, g, state, h, t):
    (v,) = state
    previous = v.copy()
    v *= h["mu"]
    v -= h["lr"] * g
    p += -h["mu"] * previous + (1 + h["mu"]) * v


def _adagrad(p, g, state, h, t):
    (s,) = state
    s += g * g
    p -= h["lr"] * g / (np.sqrt(s) + h["eps"])


def _rmsprop(p, g, state, h, t):
    (s,) = state
    s *= h["rho"]
    s += (1 - h["rho"]) * g * g
    p -= h["lr"] * g / (np.sqrt(s) + h["eps"])


def _adam(p, g, state, h, t):
    m, v = state
    m *= h["beta1"]
    m += (1 - h["beta1"]) * g
    v *= h["beta2"]
    v += (1 - h["beta2"]) * g * g
    m_hat = m / (1 - h["beta1"] ** t)
    v_hat = v / (1 - h["beta2"] ** t)
    p -= h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"])


OPTIMIZERS: dict[str, OptimizerDef] = {
    o.name: o
    for o in (
        OptimizerDef("sgd", (), _sgd, "sgd_update"),
        OptimizerDef("momentum", ("velocity",), _momentum, "momentum_update"),
        OptimizerDef("nesterov", ("velocity",), _nesterov, "nesterov_update"),
        OptimizerDef("adagrad", ("sum_sq",), _adagrad, "adagrad_update"),
        OptimizerDef("rmsprop", ("mean_sq",), _rmsprop, "rmsprop_update"),
        OptimizerDef("adam", ("m", "v"), _adam, "adam_update"),
    )
}
assert set(OPTIMIZERS) == set(DEFAULTS), "every optimizer of the train block is declared here"
