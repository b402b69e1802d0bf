"""Results as a table, one row per example: for ``-o results.csv`` (``predict``, ``run``) and the preview that
``predict`` prints on a terminal.

A 1-D array is one column, a 2-D array ``[N, K]`` is K columns (``probs_setosa`` when its K entries are the
classes, else ``probs_0``, ``probs_1``...), a scalar is repeated on every row. Arrays of other ranks, or with
another number of rows, do not fit a table: writing them as CSV is an error that says to write an .npz.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gradc.dsl.diagnostics import DataError

from ..files import atomic_write_text, save_npz

Columns = dict[str, np.ndarray]


def table_columns(arrays: Mapping[str, np.ndarray], class_names: Sequence[str] | None = None) -> Columns:
    """The arrays as named columns of equal length (raises :class:`DataError` for one that does not fit)."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    batched = {name: value.shape[0] for name, value in arrays.items() if value.ndim >= 1}
    rows = max(batched.values(), default=1)
    columns: Columns = {}
    for name, value in arrays.items():
        if value.ndim > 2 or (value.ndim >= 1 and value.shape[0] != rows):
            raise DataError(f"'{name}' (shape {value.shape}) does not fit a table of {rows} row(s), one per "
                            "example: write an .npz file instead")
        if value.ndim == 0:
            columns[name] = np.full(rows, value.item(), dtype=value.dtype)
        elif value.ndim == 1:
            columns[name] = value
        else:
            width = value.shape[1]
            labels = class_names if class_names is not None and len(class_names) == width else range(width)
            for index, label in enumerate(labels):
                columns[f"{name}_{label}"] = value[:, index]
    return columns


def csv_text(columns: Columns) -> str:
    """A header row, then one row per example; numbers written so that they read back exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow([str(value) for value in row])
    return buffer.getvalue()


def write_results(path: str | Path, arrays: Mapping[str, np.ndarray],
                  class_names: Sequence[str] | None = None) -> str:
    """Write ``arrays`` to ``path``: a CSV table when it ends in .csv, else an .npz. Returns the format."""
    if Path(path).suffix.lower() == ".csv":
        atomic_write_text(path, csv_text(table_columns(arrays, class_names)))
        return "csv"
    save_npz(path, arrays)
    return "npz"


def preview(columns: Columns, rows: int = 5) -> str:
    """The first ``rows`` rows, aligned, with the count of the rest."""
    total = len(next(iter(columns.values()))) if columns else 0
    shown = {name: [_cell(v) for v in values[:rows]] for name, values in columns.items()}
    widths = {name: max(len(name), *(len(c) for c in cells)) if cells else len(name)
              for name, cells in shown.items()}
    lines = ["  ".join(f"{name:<{widths[name]}}" for name in shown).rstrip()]
    for index in range(min(rows, total)):
        lines.append("  ".join(f"{shown[name][index]:<{widths[name]}}" for name in shown).rstrip())
    if total > rows:
        lines.append(f"... {total - rows} more row{'s' if total - rows != 1 else ''}")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, np.floating | float):
        return f"{value:.4g}"
    return str(value)
