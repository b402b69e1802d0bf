"""Training runs that tests/test_distributed.py makes once in one process and once on several ranks (this file
run under ``mpiexec``): every optimizer, with dropout, weight decay, gradient clipping, a schedule and an uneven
last batch (1,257 training rows in batches of 50: the last has 7, split 4 + 3); and a model with batchnorm
(synchronized batch statistics) under two optimizers."""

from __future__ import annotations

import json
import sys

import numpy as np

import gradc
from gradc.compiler.optimizers import OPTIMIZERS

MODEL = """model dp_check
input x: f32[N, 64]
input y: i64[N]
logits = x -> dense(32, init=he_normal) -> relu -> dropout(0.25) -> dense(10)
loss L = cross_entropy(logits, y)
train {{
  data = digits
  optimizer = {optimizer}
  schedule = cosine
  batch = 50
  epochs = 1
  weight_decay = 1e-3
  clip_norm = {clip}
}}
"""
BATCHNORM_MODEL = """model dp_batchnorm
input x: f32[N, 64]
input y: i64[N]
logits = x -> dense(32) -> batchnorm -> relu -> dropout(0.1) -> dense(10)
loss L = cross_entropy(logits, y)
train {{
  data = digits
  optimizer = {optimizer}
  batch = 50
  epochs = 1
}}
"""
RATES = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "rmsprop": 0.003, "adam": 0.003}


def runs() -> dict[str, str]:
    """Run name -> model source."""
    sources = {name: MODEL.format(optimizer=f"{name}(lr={RATES[name]})", clip=1.0 if name == "sgd" else 0)
               for name in OPTIMIZERS}
    for name in ("sgd", "adam"):
        sources[f"batchnorm/{name}"] = BATCHNORM_MODEL.format(optimizer=f"{name}(lr={RATES[name]})")
    return sources


def train_all() -> dict:
    """Per run: each epoch's training and validation loss and the first parameters (rank 0's, on several
    ranks)."""
    figures = {}
    for name, source in runs().items():
        program = gradc.compile(gradc.loads(source), seed=3)
        result = program.fit(write_run=False, quiet=True)
        figures[name] = {"losses": [r["train_loss"] for r in result.history],
                         "val_losses": [r["val_loss"] for r in result.history],
                         "params": {k: np.asarray(v, np.float64).ravel()[:50].tolist()
                                    for k, v in program.params.items()}}
    return figures


if __name__ == "__main__":
    from gradc.runtime.distributed.world import current_world

    figures = train_all()
    if current_world().is_root:
        with open(sys.argv[1], "w") as f:
            json.dump(figures, f)
