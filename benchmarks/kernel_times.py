"""Where one entry point's time goes on the cpu target, kernel by kernel.

Generates the model's cpu source, puts a clock reading (in Numba's object mode) before every kernel of one
entry point, compiles that copy and runs it on random inputs; prints each kernel's median milliseconds,
its share of the whole and its comment line from the generated code (ops, node ids, source lines).

    python benchmarks/kernel_times.py models/cnn_digits.model --batch 256
    python benchmarks/kernel_times.py my.model --entry forward --batch 64 --repeat 20

The clock readings cost a few microseconds each: fine for kernels of a millisecond or more, meaningless
for tiny ones. Integer inputs are zeros (valid labels and indices for every model).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

KERNEL = re.compile(r"^(?P<indent>    )# (?P<label>k\d+ .*)$")
CLOCK = """\
import time as _time

from numba import objmode

MARKS = []


def mark_time(k):
    MARKS.append((k, _time.perf_counter()))
"""


def instrument(source: str, entry: str) -> tuple[str, list[str]]:
    """``source`` with a clock reading before each kernel of ``entry`` and at its return."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {entry}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("@njit")), len(lines))
    labels: list[str] = []
    out = lines[:start + 1]
    for line in lines[start + 1:end]:
        found = KERNEL.match(line)
        if found or line.startswith("    return") or line.startswith("    # parameter update"):
            label = found["label"] if found else line.strip()
            labels.append(label)
            out.append(f"    with objmode():\n        mark_time({len(labels) - 1})")
        out.append(line)
    out += lines[end:]
    text = "\n".join(out)
    return CLOCK + text, labels


def random_inputs(graph, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for name, node in graph.inputs().items():
        t = graph.node(node).type
        shape = tuple(batch if isinstance(d, str) else d for d in t.shape)
        dtype = t.numpy_dtype
        feeds[name] = (rng.normal(size=shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                       else np.zeros(shape, dtype))
    return feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--entry", default="train_sgd")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import gradc

    warnings.filterwarnings("ignore", message="Code running in object mode")
    program = gradc.compile(gradc.load(args.model), cache=False)
    source = program.backend.lowered.source
    text, labels = instrument(source, args.entry)
    folder = Path(tempfile.mkdtemp(prefix="gradc-kernel-times-"))
    (folder / "instrumented.py").write_text(text)
    sys.path.insert(0, str(folder))
    instrumented = importlib.import_module("instrumented")  # the generated module, clocks added

    backend = program.backend
    feeds = random_inputs(backend.graph, args.batch)
    optimizer = program.set_optimizer(args.entry.removeprefix("train_")) if args.entry.startswith("train_") \
        else None
    call_args = backend.entry_arguments(args.entry, feeds, program.params, optimizer)
    function = getattr(instrumented, args.entry)
    function(*call_args)  # compiles
    per_kernel: dict[int, list[float]] = {}
    totals = []
    for _ in range(args.repeat):
        instrumented.MARKS.clear()
        start = time.perf_counter()
        function(*call_args)
        totals.append(time.perf_counter() - start)
        for (k, t0), (_, t1) in itertools.pairwise(instrumented.MARKS):
            per_kernel.setdefault(k, []).append(t1 - t0)
    total = statistics.median(totals) * 1e3
    rows = sorted(((statistics.median(v) * 1e3, k) for k, v in per_kernel.items()), reverse=True)
    print(f"{args.model}: {args.entry} at batch {args.batch}, median of {args.repeat}: {total:.2f} ms")
    print("| ms | share | kernel |\n|---|---|---|")
    for ms, k in rows[:args.top]:
        print(f"| {ms:.2f} | {ms / total:.0%} | {labels[k]} |")


if __name__ == "__main__":
    main()
