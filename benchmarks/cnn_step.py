"""One training step of a small CNN, gradc beside PyTorch eager and torch.compile in the same run.

The step is forward, backward and a plain SGD update of conv 3x3 32 -> ReLU -> max pool 2 -> conv 3x3 64 ->
ReLU -> max pool 2 -> dense 10 (softmax cross-entropy), float32, NCHW, on synthetic 1x28x28 images. The
frameworks are timed in interleaved rounds and reported as medians and ratios to gradc; gradc's cold compile
(fresh process, no cache) and each framework's peak resident memory (alone in its own process) are measured in
child processes.

    pip install -e ".[bench]"
    python benchmarks/cnn_step.py                  # a markdown report on stdout
    python benchmarks/cnn_step.py --json out.json  # also the raw figures

PyTorch is optional: without it the report says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from mlp_step import _torch_step as torch_step  # the measuring helpers the benchmarks share
from mlp_step import child as run_child
from mlp_step import cuda_section, gradc_cuda_step, machine, peak_resident_mib, publish, versions
from mlp_step import interleaved as run_interleaved

LR = 0.01
Step = Callable[[], float]

SOURCE = """model cnn_bench
input x: f32[N, 1, 28, 28]
input y: i64[N]
logits = x -> conv2d(32, 3) -> relu -> max_pool2d(2) -> conv2d(64, 3) -> relu -> max_pool2d(2)
           -> flatten -> dense(10)
loss L = cross_entropy(logits, y)
"""


def data(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, size=batch)


def setup_gradc(batch: int) -> Step:
    import gradc

    program = gradc.compile(gradc.loads(SOURCE), cache=False)
    x, y = data(batch)
    feeds = {"x": x, "y": y}
    return lambda: program.step(feeds, lr=LR, validate=False)


def _torch_model():
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 10))


def _torch_step(model, batch: int) -> Step:
    return torch_step(model, batch, make_data=data)


def setup_torch(batch: int) -> Step:
    return _torch_step(_torch_model(), batch)


def setup_torch_compile(batch: int) -> Step:
    import torch

    return _torch_step(torch.compile(_torch_model()), batch)


def setup_gradc_cuda(batch: int) -> Step:
    return gradc_cuda_step(SOURCE, *data(batch))


def setup_torch_cuda(batch: int) -> Step:
    """PyTorch eager on the GPU, under the same terms: the NumPy batch copied in each step, loss not read."""
    import torch

    if not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA device")
    return torch_step(_torch_model().cuda(), batch, on_gpu=True, make_data=data)


FRAMEWORKS: dict[str, Callable[[int], Step]] = {
    "gradc": setup_gradc,
    "pytorch-eager": setup_torch,
    "torch.compile": setup_torch_compile,
}
CUDA_FRAMEWORKS: dict[str, Callable[[int], Step]] = {"gradc-cuda": setup_gradc_cuda, "pytorch-cuda": setup_torch_cuda}


def child(args: list[str]) -> str:
    return run_child(args, __file__)


def peak_memory_child(name: str, batch: int) -> None:
    step = FRAMEWORKS[name](batch)
    for _ in range(10):
        step()
    print(f"{peak_resident_mib():.0f}")


def compile_child() -> None:
    import gradc

    start = time.perf_counter()
    program = gradc.compile(gradc.loads(SOURCE), cache=False)
    program.backend.compile(("train_sgd",))
    print(f"{time.perf_counter() - start:.2f}")


def table(timed: dict, batches: list[int], base_name: str) -> list[str]:
    """Markdown rows: ms per step and the ratio to ``base_name`` for each framework and batch."""
    lines = ["| framework | " + " | ".join(f"batch {b}" for b in batches) + " | first call (s) |",
             "|---|" + "---|" * (len(batches) + 1)]
    base = timed["median_ms"].get(base_name, {})
    for name, per_batch in timed["median_ms"].items():
        cells = [f"{per_batch[b]:.2f} ({per_batch[b] / base[b] if b in base else float('nan'):.2f}x)"
                 for b in batches]
        first = timed["first_call_s"].get(f"{name}@{batches[0]}", float("nan"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {first:.2f} |")
    for name, why in timed["missing"].items():
        lines.append(f"| {name} | not installed ({why}) |")
    return lines


def report(results: dict) -> str:
    found = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    batches = results["batches"]
    lines = [f"machine: {results['machine']}", f"versions: {found}", f"command: {results['command']}", "",
             "ms per training step (median of interleaved rounds); ratio = framework / gradc", ""]
    lines += table(results, batches, "gradc")
    cuda = results.get("cuda")
    if isinstance(cuda, dict):
        lines += ["", f"CUDA ({cuda['device']}): ms per step; ratio = framework / gradc-cuda", ""]
        lines += table(cuda, batches, "gradc-cuda")
    elif cuda:
        lines += ["", f"CUDA: not measured ({cuda})"]
    if results.get("peak_mib"):
        lines += ["", f"peak resident memory at batch {batches[-1]}, each framework alone (MiB):", ""]
        lines += [f"- {name}: {value}" for name, value in results["peak_mib"].items()]
    lines += ["", f"gradc cold compile of the training step (fresh process, no cache): {results['compile_s']} s"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=list(FRAMEWORKS),
                        help="the CPU frameworks to time (none: only the CUDA section, where a GPU is present)")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("FRAMEWORK", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_child:
        return peak_memory_child(args.peak_memory_child[0], int(args.peak_memory_child[1]))
    if args.compile_child:
        return compile_child()
    results = {"machine": machine(), "versions": versions(), "batches": args.batches,
               "command": " ".join(["python", *sys.argv])}
    results.update(run_interleaved(args.batches, args.rounds, args.steps, args.frameworks, FRAMEWORKS))
    results["cuda"] = cuda_section(args.batches, args.rounds, args.steps, CUDA_FRAMEWORKS)
    results["peak_mib"] = {name: child(["--peak-memory-child", name, str(args.batches[-1])])
                           for name in args.frameworks if name not in results["missing"]}
    results["compile_s"] = child(["--compile-child"])
    publish(report(results), results, args.json)


if __name__ == "__main__":
    main()
