"""gradc: a compiler for neural networks described in .model files."""

from importlib.metadata import version

from gradc.dsl.diagnostics import DataError, GradcError, ModelError

from .api import compile, export, graph, load, load_checkpoint, loads

__version__ = version("gradc")  # the installed distribution's, from pyproject.toml: one place

__all__ = ["DataError", "GradcError", "ModelError", "__version__", "compile", "export", "graph", "load",
           "load_checkpoint", "loads"]
