"""gradc: a compiler for neural networks described in .model files."""

from gradc.dsl.diagnostics import DataError, GradcError, ModelError

from .api import compile, graph, load, load_checkpoint, loads

__version__ = "0.1.0"

__all__ = ["DataError", "GradcError", "ModelError", "__version__", "compile", "graph", "load", "load_checkpoint",
           "loads"]
