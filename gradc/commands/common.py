"""Helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradc.compiler.binding import lengths_in
from gradc.compiler.frontend import ModelSpec
from gradc.dsl.diagnostics import DataError, format_diagnostic

from ..api import bind_lengths, load

INT64 = np.iinfo(np.int64)


def load_spec(path: str, show_warnings: bool = True) -> ModelSpec:
    spec = load(path)
    if show_warnings:
        for w in spec.warnings:
            print(format_diagnostic(w.severity, w.message, w.location, spec.source), file=sys.stderr)
    return spec


def add_dim_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="the size of a symbolic length of the model (a sequence's T: --dim T=50); where data is "
                        "given, its shapes set it")


def bound_spec(spec: ModelSpec, args: argparse.Namespace, arrays: Mapping[str, Any] | None = None,
               source: str = "the inputs") -> ModelSpec:
    """The model with its symbolic lengths bound: to ``--dim``'s sizes, else to those of ``arrays`` (the inputs
    given, from ``source``), else to its train block data's."""
    if not spec.length_symbols:
        return spec
    dims = given_dims(args)
    if not dims and arrays:
        dims = lengths_in(spec.graph, arrays, source)
    return bind_lengths(spec, dims)


def given_dims(args: argparse.Namespace) -> dict[str, int]:
    """The ``--dim NAME=SIZE`` options as sizes."""
    dims = {}
    for item in getattr(args, "dim", None) or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip().isdigit() or int(text) < 1:
            raise DataError(f"--dim expects NAME=SIZE with a whole number of at least 1, got {item!r}")
        dims[name.strip()] = int(text)
    return dims


def parse_assignments(items: list[str] | None) -> dict[str, np.ndarray]:
    """``-i name=value`` options: a number, or comma-separated numbers for a vector. Integers stay exact
    (int64); a value that is not finite (``inf``, ``nan``, ``1e400``) or an integer beyond int64 is an
    error. The program casts to the declared dtype and refuses values it cannot hold."""
    values = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise DataError(f"-i expects NAME=VALUE, got {item!r}")
        numbers = [_number(name.strip(), v.strip()) for v in text.split(",")]
        whole = all(isinstance(v, int) for v in numbers)
        array = np.asarray(numbers, dtype=np.int64 if whole else np.float64)
        values[name.strip()] = array if "," in text else array.reshape(())
    return values


def _number(name: str, text: str) -> int | float:
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"-i {name}: {text!r} is not a number or a comma-separated list") from None
    if isinstance(value, int) and not INT64.min <= value <= INT64.max:
        raise DataError(f"-i {name}: {text} is beyond the range of a 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"-i {name}: {text} is not a finite number (NaN, infinite, or beyond the range of a "
                        "64-bit float)")
    return value


def describe_array(value: np.ndarray) -> str:
    value = np.asarray(value)
    if value.size <= 8:
        shown = np.array2string(value, precision=6, separator=", ", suppress_small=False)
        return shown if value.ndim else f"{value.item():.6g}"
    return f"array {value.shape} {value.dtype}, mean {float(np.mean(value)):.6g}"
