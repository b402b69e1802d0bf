"""Datasets that work right after install, with no download, and a person's own .npz and .csv files.

Built in:

- ``digits`` (1,797 8x8 images, 64 features, 10 classes), ``iris`` (150 flowers, 4 features, 3 classes) and
  ``breast_cancer`` (569 tumours, 30 features, 2 classes: 0 malignant, 1 benign): the copies of the UCI
  datasets that ship inside scikit-learn's package, read straight from its data folder (scikit-learn is not
  imported).
- generated from the seed: ``xor`` (400 points in [-1, 1]^2, class = sign(x0 * x1) > 0), ``moons`` (two
  interleaved half circles, 400 points, noise 0.1), ``spirals`` (3 arms of 200 points, the classic example
  that no linear model can separate), ``curve`` (1-D regression, 400 points, t = tanh(2x) + 0.05 noise).
- sequences generated from the seed, features ``[n, T, F]``: ``adding`` (the adding problem, T = 50: a value
  and a marker channel, the target the sum of the two marked values), ``sine`` (T = 20 noisy samples of a
  sine of random frequency and phase, the target the next sample) and ``parity`` (T = 16 bits, labelled at
  every step with whether an odd number of the bits so far is set).
- token sequences generated from the seed, features ``[n, T]`` (digits 0-9, for an ``i64[N, T]`` input) and
  a label per token: ``reverse`` and ``sort`` (the sequence reversed, or sorted), and ``grammar`` (text of a
  small English-like grammar, 24 words, each token labelled with the next: a causal language model's data).

A sequence dataset's length T follows the model's feature input where it declares one (``i64[N, 16]`` for
tokens: sixteen steps; ``f32[N, 30, 2]`` for adding: thirty); otherwise (a symbolic T, or the steps
flattened into ``[N, T * F]``) it is the dataset's own (12 for reverse and sort, 16 for grammar, 50, 20, 16 for
adding, sine, parity).

A dataset has features (a matrix, or sequences) and one label per example; binding it to a model's inputs is
the job of :mod:`.data`.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradc.dsl.diagnostics import DataError, did_you_mean

from ..files import load_npz
from . import grammar as grammar_text


@dataclass
class Table:
    """Features [n, d], or [n, T, F] for sequences (float64), and labels [n], or [n, T] for a label per step
    (int64 class indices or float64 targets)."""

    name: str
    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    label_name: str
    class_names: tuple[str, ...] | None = None  # None for regression

    def __post_init__(self) -> None:
        if len(self.features) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.features)} feature rows but {len(self.labels)} labels")


@dataclass
class NamedArrays:
    """Arrays named after the model's inputs (from an .npz file)."""

    name: str
    arrays: dict[str, np.ndarray]


Dataset = Table | NamedArrays


def _sklearn_data(filename: str) -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("the built-in datasets digits, iris and breast_cancer are read from scikit-learn's package; "
                        "install it with: pip install scikit-learn")
    path = Path(spec.origin).parent / "datasets" / "data" / filename
    if not path.exists():
        raise DataError(f"scikit-learn's data file {path} is missing; reinstall scikit-learn")
    return path


def _sklearn_csv(filename: str, name: str, feature_names: tuple[str, ...] | None = None) -> Table:
    """scikit-learn's format: a first row 'n_samples, n_features, class names...', then rows of numbers
    whose last column is the class index."""
    path = _sklearn_data(filename)
    opener = gzip.open if filename.endswith(".gz") else open
    with opener(path, "rt") as handle:
        rows = list(csv.reader(handle))
    if filename.startswith("digits"):  # no header: 64 pixels then the digit
        header, body = None, rows
    else:
        header, body = rows[0], rows[1:]
    data = np.array(body, dtype=np.float64)
    features, labels = data[:, :-1], data[:, -1].astype(np.int64)
    classes = tuple(header[2:]) if header else tuple(str(c) for c in range(int(labels.max()) + 1))
    names = feature_names or tuple(f"x{i}" for i in range(features.shape[1]))
    return Table(name, features, labels, names, "class", classes)


def digits(seed: int) -> Table:
    return _sklearn_csv("digits.csv.gz", "digits", tuple(f"pixel{r}{c}" for r in range(8) for c in range(8)))


def iris(seed: int) -> Table:
    return _sklearn_csv("iris.csv", "iris", ("sepal_length", "sepal_width", "petal_length", "petal_width"))


def breast_cancer(seed: int) -> Table:
    return _sklearn_csv("breast_cancer.csv", "breast_cancer")


def xor(seed: int, n: int = 400) -> Table:
    rng = np.random.default_rng([seed, 1])
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    return Table("xor", x, (x[:, 0] * x[:, 1] > 0).astype(np.int64), ("x0", "x1"), "class", ("0", "1"))


def moons(seed: int, n: int = 400, noise: float = 0.1) -> Table:
    rng = np.random.default_rng([seed, 2])
    labels = np.arange(n) % 2
    angle = rng.uniform(0.0, np.pi, size=n)
    x = np.where(labels[:, None] == 0,
                 np.stack([np.cos(angle), np.sin(angle)], axis=1),
                 np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], axis=1))
    x = x + rng.normal(0.0, noise, size=x.shape)
    return Table("moons", x, labels.astype(np.int64), ("x0", "x1"), "class", ("0", "1"))


def spirals(seed: int, per_class: int = 200, arms: int = 3, noise: float = 0.2) -> Table:
    rng = np.random.default_rng([seed, 3])
    radius = np.tile(np.linspace(0.0, 1.0, per_class), arms)
    labels = np.repeat(np.arange(arms), per_class)
    theta = labels * (2 * np.pi / arms) + radius * 4.0 + rng.normal(0.0, noise, size=radius.shape)
    x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
    return Table("spirals", x, labels.astype(np.int64), ("x0", "x1"), "class", tuple(map(str, range(arms))))


def curve(seed: int, n: int = 400) -> Table:
    rng = np.random.default_rng([seed, 4])
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    t = np.tanh(2.0 * x[:, 0]) + rng.normal(0.0, 0.05, size=n)
    return Table("curve", x, t, ("x",), "t", None)


def adding(seed: int, n: int = 4000, steps: int = 50) -> Table:
    """The adding problem (Hochreiter and Schmidhuber 1997): each step holds a value drawn from U(0, 1) and a
    marker, 1 at two steps (one in each half) and 0 elsewhere; the target is the sum of the two marked values.
    Predicting the mean (1) scores an MSE of 1/6, about 0.167; a model must carry the marked values across up
    to ``steps`` steps to do better."""
    rng = np.random.default_rng([seed, 5])
    values = rng.uniform(0.0, 1.0, size=(n, steps))
    half = steps // 2
    first, second = rng.integers(0, half, size=n), rng.integers(half, steps, size=n)
    markers = np.zeros((n, steps))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return Table("adding", np.stack([values, markers], axis=2), target, ("value", "marker"), "sum", None)


def sine(seed: int, n: int = 2000, steps: int = 20, noise: float = 0.05) -> Table:
    """Next-value forecasting: ``steps`` samples x_t = sin(w t + phase) + noise, with w drawn from U(0.2, 0.6)
    radians per step and the phase from U(0, 2 pi); the target is the next sample, x_steps. Repeating the
    last value scores an RMSE of about 0.3 (the baseline a model should beat); the noise alone is 0.05."""
    rng = np.random.default_rng([seed, 6])
    w = rng.uniform(0.2, 0.6, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    x = np.sin(w * np.arange(steps + 1) + phase) + rng.normal(0.0, noise, size=(n, steps + 1))
    return Table("sine", x[:, :steps, None], x[:, steps], ("x",), "next", None)


def parity(seed: int, n: int = 4000, steps: int = 16) -> Table:
    """Bit sequences labelled at every step with the parity of the bits so far (class 1, ``odd``, when an odd
    number of them is set): a recurrent model flips its state on every 1. The last step's label is the
    sequence's parity, which no model that forgets can predict better than chance (accuracy 0.5)."""
    rng = np.random.default_rng([seed, 7])
    bits = rng.integers(0, 2, size=(n, steps))
    return Table("parity", bits[:, :, None].astype(np.float64), np.cumsum(bits, axis=1) % 2, ("bit",), "parity",
                 ("even", "odd"))


def _digit_sequences(seed: int, stream: int, n: int, steps: int) -> np.ndarray:
    return np.random.default_rng([seed, stream]).integers(0, 10, size=(n, steps))


def reverse(seed: int, n: int = 4000, steps: int = 12) -> Table:
    """Sequences of ``steps`` digits (tokens 0-9), each labelled with the sequence reversed: position t's label is
    the token at position T - 1 - t. A sequence-to-sequence task of the same length (chance: 0.1 a token)."""
    tokens = _digit_sequences(seed, 8, n, steps)
    return Table("reverse", tokens.astype(np.float64), tokens[:, ::-1].copy(),
                 tuple(f"token{t}" for t in range(steps)), "reversed", tuple(map(str, range(10))))


def sort(seed: int, n: int = 4000, steps: int = 12) -> Table:
    """Sequences of ``steps`` digits, each labelled with the sequence sorted: position t's label is the t-th
    smallest token. Every position must count the tokens smaller than each one (chance: about 0.2 a token,
    predicting the most frequent token at each rank)."""
    tokens = _digit_sequences(seed, 9, n, steps)
    return Table("sort", tokens.astype(np.float64), np.sort(tokens, axis=1),
                 tuple(f"token{t}" for t in range(steps)), "sorted", tuple(map(str, range(10))))


def grammar(seed: int, n: int = 12000, steps: int = 16) -> Table:
    """Language modelling: windows of ``steps`` tokens cut from a run of sentences of a small English-like
    grammar (:mod:`.grammar`: 24 words, subject-verb agreement across a prepositional phrase), each starting
    0 to 11 tokens into its own run of sentences; a token's label is the next token. The features and the
    labels are the same text shifted by one, as a causal language model trains."""
    rng = np.random.default_rng([seed, 10])
    windows = np.empty((n, steps + 1), dtype=np.int64)
    for row in range(n):
        start = int(rng.integers(0, 12))
        windows[row] = grammar_text.token_stream(rng, start + steps + 1)[start:start + steps + 1]
    return Table("grammar", windows[:, :-1].astype(np.float64), windows[:, 1:].copy(),
                 tuple(f"token{t}" for t in range(steps)), "next", grammar_text.VOCABULARY)


BUILTIN: dict[str, Callable[..., Table]] = {
    "digits": digits, "iris": iris, "breast_cancer": breast_cancer,
    "xor": xor, "moons": moons, "spirals": spirals, "curve": curve,
    "adding": adding, "sine": sine, "parity": parity, "reverse": reverse, "sort": sort, "grammar": grammar,
}
# the sequence datasets (a ``steps`` argument, the length T) and the rank of the feature input whose axis 1
# is T: tokens [N, T], or steps of features [N, T, F]
SEQUENCES = {"adding": 3, "sine": 3, "parity": 3, "reverse": 2, "sort": 2, "grammar": 2}
MAX_STEPS = 512


def load_dataset(source: str, seed: int = 0, label: str | None = None, label_optional: bool = False,
                 feature_shape: tuple | None = None) -> Dataset:
    """A built-in dataset by name, or a path to a .npz or .csv file. ``label`` names a .csv file's label
    column; with ``label_optional`` (the name is the model's label input) a file without that column takes
    its last one. A built-in sequence dataset takes its length T from ``feature_shape``, the feature input's
    declared shape, where that is [N, T] for tokens or [N, T, F] for steps of features with T a number;
    otherwise it keeps its own."""
    if source in BUILTIN:
        rank = SEQUENCES.get(source)
        if rank is None or feature_shape is None or len(feature_shape) != rank or not isinstance(
                feature_shape[1], int):
            return BUILTIN[source](seed)
        steps = feature_shape[1]
        if not 2 <= steps <= MAX_STEPS:
            raise DataError(f"dataset {source}: sequences of {steps} steps; the built-in sequence datasets are "
                            f"2 to {MAX_STEPS} steps long")
        return BUILTIN[source](seed, steps=steps)
    path = Path(source)
    if path.suffix == ".npz":
        return NamedArrays(path.name, load_npz(path, "data"))
    if path.suffix == ".csv":
        return read_csv(path, label, label_optional)
    if not path.suffix and not path.exists():
        raise DataError(f"unknown dataset '{source}'{did_you_mean(source, BUILTIN)} "
                        f"(built in: {', '.join(BUILTIN)}; or a path to a .npz or .csv file)")
    raise DataError(f"data file {source}: expected a .npz or .csv file, or a built-in dataset "
                    f"({', '.join(BUILTIN)})")


def read_csv(path: str | Path, label: str | None = None, label_optional: bool = False) -> Table:
    """A .csv with a header row; ``label`` names the label column (default, and with ``label_optional`` when
    no column has that name: the last column). Feature columns must be numbers; the label column may hold
    numbers or class names (mapped to 0, 1, ... in sorted order)."""
    path = Path(path)
    header, columns = _read_columns(path)
    if label is None or (label_optional and label not in header):
        label = header[-1]
    if label not in header:
        raise DataError(f"{path}: no label column '{label}'{did_you_mean(label, header)} "
                        f"(columns: {', '.join(header)})")
    if len(header) == 1:
        raise DataError(f"{path}: the only column is the label column '{label}'; a dataset needs at least one "
                        "feature column beside it")
    features = np.stack([_numeric_column(path, name, columns[name]) for name in header if name != label], axis=1)
    labels, classes = _label_column(path, label, columns[label])
    return Table(path.name, features, labels, tuple(h for h in header if h != label), label, classes)


def read_csv_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The header of a headed .csv and every column as a float64 matrix [rows, columns] (inputs for
    prediction)."""
    path = Path(path)
    header, columns = _read_columns(path)
    return header, np.stack([_numeric_column(path, name, columns[name]) for name in header], axis=1)


def _read_columns(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}:1: column {position} has no name in the header row")
        if name in seen:
            raise DataError(f"{path}:1: columns {seen[name]} and {position} are both named '{name}' "
                            "(give every column its own name)")
        seen[name] = position
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{number}: {len(row)} values, but the header has {len(header)} columns")
    return header, {name: [row[i].strip() for row in rows[1:]] for i, name in enumerate(header)}


def _numeric_column(path: Path, name: str, cells: list[str]) -> np.ndarray:
    values = np.empty(len(cells))
    for row, cell in enumerate(cells, start=2):
        try:
            values[row - 2] = float(cell)
        except ValueError:
            raise DataError(f"{path}:{row}: column '{name}' holds {cell!r}, not a number") from None
        if not np.isfinite(values[row - 2]):
            raise DataError(f"{path}:{row}: column '{name}' holds {cell!r} (NaN or infinite values are not allowed)")
    return values


def _label_column(path: Path, name: str, cells: list[str]) -> tuple[np.ndarray, tuple[str, ...] | None]:
    numeric = [_is_number(c) for c in cells]
    if not any(numeric):  # class names
        classes = tuple(sorted(set(cells)))
        return np.array([classes.index(c) for c in cells], dtype=np.int64), classes
    return _numeric_column(path, name, cells), None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
