"""What a model may ask of the machine, checked by the front end with located errors: a number literal must
fit the dtype of the tensors it meets, and every tensor must fit in this machine's memory."""

from __future__ import annotations

import os

import numpy as np

from gradc.dsl.diagnostics import ModelError, SourceLocation

from .graph import Graph
from .types import BOOL, FLOAT_DTYPES, NUMPY_DTYPES


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: int) -> str:
    """``4,398,046,511,104 bytes (4.0 TiB)``."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            break
        size /= 1024
    return f"{n:,} bytes ({size:.1f} {unit})" if unit != "B" else f"{n:,} bytes"


def number_problem(value: float | int, dtype: str) -> str | None:
    """Why a number cannot become a ``dtype`` constant (None when it can): it must be finite and within the
    dtype's range; a float is rounded once to the nearest value of the dtype, the only change allowed."""
    if dtype in FLOAT_DTYPES:
        largest = float(np.finfo(NUMPY_DTYPES[dtype]).max)
        if not abs(value) <= largest:  # also catches inf and nan
            limit = f"{largest:.3g}".replace("e+", "e")
            return f"out of range for {dtype}: an {dtype} value is at most {limit} in magnitude"
        return None
    if dtype == BOOL:  # a comparison folded to a constant: True and False are the only values
        return None
    info = np.iinfo(NUMPY_DTYPES[dtype])
    if not info.min <= value <= info.max:
        return f"out of range for {dtype}: it holds {info.min} to {info.max}"
    return None


def check_literal_fits(value: float | int, dtype: str, loc: SourceLocation, text: str) -> None:
    """A literal that becomes a ``dtype`` constant must keep its meaning there: 1e300 is inf as an f32."""
    problem = number_problem(value, dtype)
    if problem is not None and dtype in FLOAT_DTYPES:
        raise ModelError(f"number {text} is {problem}", loc)


def check_allocations(graph: Graph, path: str, memory: int | None = None) -> None:
    """Every parameter and value must fit in memory (one example's worth, for values with the batch
    dimension): the error points at the statement that declares it and says how many bytes it needs."""
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    for node in sorted(graph.nodes(), key=lambda n: (n.op != "param", n.id)):
        needed = node.type.numel() * np.dtype(node.type.numpy_dtype).itemsize
        if needed <= memory:
            continue
        per_example = " per example" if graph.batch_symbol in node.type.shape else ""
        kind = {"param": "parameter", "input": "input"}.get(node.op, "value")
        what = f"{kind} '{node.name}' ({node.type})" if node.name else f"this {node.op} ({node.type})"
        raise ModelError(
            f"{what} needs {format_bytes(needed)}{per_example}, more than this machine's memory "
            f"({format_bytes(memory)})",
            SourceLocation(path, node.line or 1, node.col or 1),
        )
