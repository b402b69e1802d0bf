"""The .model language: grammar, parser, AST and diagnostics."""

from .diagnostics import DataError, GradcError, ModelError, ShapeError, SourceLocation, format_error
from .parser import parse_file, parse_source

__all__ = [
    "DataError",
    "GradcError",
    "ModelError",
    "ShapeError",
    "SourceLocation",
    "format_error",
    "parse_file",
    "parse_source",
]
