"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys

import numpy as np

from gradc.compiler.frontend import ModelSpec
from gradc.dsl.diagnostics import DataError, format_diagnostic

from ..api import load


def load_spec(path: str, show_warnings: bool = True) -> ModelSpec:
    spec = load(path)
    if show_warnings:
        for w in spec.warnings:
            print(format_diagnostic(w.severity, w.message, w.location, spec.source), file=sys.stderr)
    return spec


def parse_assignments(items: list[str] | None) -> dict[str, np.ndarray]:
    """``-i name=value`` options: a number, or comma-separated numbers for a vector."""
    values = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise DataError(f"-i expects NAME=VALUE, got {item!r}")
        try:
            numbers = [float(v) for v in text.split(",")]
        except ValueError:
            raise DataError(f"-i {name}: {text!r} is not a number or a comma-separated list") from None
        array = np.asarray(numbers if "," in text else numbers[0])
        values[name.strip()] = array.astype(np.int64) if np.all(array == np.round(array)) else array
    return values


def describe_array(value: np.ndarray) -> str:
    value = np.asarray(value)
    if value.size <= 8:
        shown = np.array2string(value, precision=6, separator=", ", suppress_small=False)
        return shown if value.ndim else f"{value.item():.6g}"
    return f"array {value.shape} {value.dtype}, mean {float(np.mean(value)):.6g}"
