"""How the compiler's own stages scale with the model (issue 13's targets), each figure the median of a few runs.

- check, optimize (every pass) and schedule (expansion, fusion, and the schedule of every entry point) of a
  model of 1024 `dense -> tanh` layers;
- parse and check of a 2,000-stage `->` pipeline;
- cold compile (a fresh process, no program cache; the kernel library compiled already) of the training step
  of the benchmark MLP (784-256-256-10) and of MLPs with 16 and 64 hidden layers of 256.

    python benchmarks/compile_scale.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlp_step import machine


def deep_tanh(layers: int) -> str:
    return (f"model deep\ninput x: f32[N, 8]\ninput t: f32[N, 2]\ny = x{' -> dense(8) -> tanh' * layers}"
            " -> dense(2)\nloss L = mean((y - t)^2)\n")


def long_pipeline(stages: int) -> str:
    return f"model long\ninput x: f32[N, 4]\ny = x{' -> relu' * stages}\noutput y\n"


def passes_seconds(layers: int) -> dict[str, float]:
    from gradc import api
    from gradc.compiler.driver import plan, prepare

    start = time.perf_counter()
    graph = api.loads(deep_tanh(layers)).graph
    checked = time.perf_counter()
    optimized = prepare(graph)
    passed = time.perf_counter()
    plan(optimized)  # the schedule stages (expand, fusion) and the plan of every entry point
    done = time.perf_counter()
    return {"check": checked - start, "passes": passed - checked, "schedule": done - passed, "total": done - start}


def parse_seconds(stages: int) -> float:
    from gradc import api

    start = time.perf_counter()
    api.loads(long_pipeline(stages))
    return time.perf_counter() - start


def cold_compile_seconds(depth: int) -> float:
    """A fresh process: mlp_step.py's own child, which compiles the training step without the cache."""
    script = Path(__file__).resolve().parent / "mlp_step.py"
    out = subprocess.run([sys.executable, str(script), "--compile-depth-child", str(depth)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold_compile_seconds(2)  # the kernel library compiled (and cached) before anything is timed
    runs = [passes_seconds(1024) for _ in range(args.runs)]
    print(f"# Compile-time scale ({machine()}; median of {args.runs})\n")
    print("| measure | seconds | target |\n|---|---|---|")
    for key in ("check", "passes", "schedule", "total"):
        target = "≤ 3" if key == "total" else ""
        print(f"| 1024 dense->tanh layers: {key} | {statistics.median(r[key] for r in runs):.2f} | {target} |")
    print(f"| 2,000-stage pipeline: parse and check | "
          f"{statistics.median(parse_seconds(2000) for _ in range(args.runs)):.2f} | |")
    for depth, target in ((2, "≤ 2"), (16, ""), (64, "≤ 10")):
        seconds = statistics.median(cold_compile_seconds(depth) for _ in range(args.runs))
        print(f"| cold compile, training step, {depth} hidden layers | {seconds:.2f} | {target} |")


if __name__ == "__main__":
    main()
