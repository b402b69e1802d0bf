"""A compiled program to ONNX: its inference graph, trained parameters and training standardization in one
file that onnxruntime runs and Netron draws (the graph itself is written by the compiler's ONNX target,
``compiler/lower/onnx.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradc.compiler.driver import onnx_model
from gradc.dsl.diagnostics import GradcError

from ..files import atomic_write_bytes
from .data import find_task

if TYPE_CHECKING:
    from ..execution.program import Program


def export_onnx(program: Program, path: str | Path) -> list[str]:
    """Write ``program`` as an ONNX model to ``path`` (whole: a temporary file, then renamed); returns the
    outputs it has: the model's output statements, or for a model with only a loss, the loss's prediction
    operand (``logits``), as ``gradc predict`` writes them."""
    outputs = list(program.source.outputs)
    scaling = dict(program.scaling.stats) if program.scaling is not None else None
    unscaling = {name: scaling[features] for name, features in _reconstructions(program).items()
                 if scaling and features in scaling and name in outputs}
    atomic_write_bytes(path, onnx_model(program.source, outputs, program.host_params(), scaling, unscaling))
    return outputs


def _reconstructions(program: Program) -> dict[str, str]:
    """An autoencoder's reconstruction output -> the input it reconstructs: ``gradc predict`` gives it in the
    data's units (the standardization undone), and so does the exported model."""
    settings = program.train_settings or {}
    try:
        task = find_task(program.source, settings.get("label"), settings.get("features"))
    except GradcError:
        return {}
    if task.kind != "reconstruction" or task.prediction is None:
        return {}
    return {task.prediction: task.features}
