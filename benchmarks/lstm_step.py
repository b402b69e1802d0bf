"""One training step of an LSTM, gradc beside PyTorch eager (``nn.LSTM``) and torch.compile in the same run.

The step is forward, backward (through time) and a plain SGD update of an LSTM (F = 16 inputs, H = 128 units,
PyTorch's gates and layout) over T = 50 steps, its last state through a linear head, mean squared error,
float32, batch B = 32 (the issue's configuration). The frameworks are timed in interleaved rounds and reported
as medians and ratios to gradc. Child processes measure gradc's cold compile of the step at T = 10, 100 and
1000 (it must not depend on T) and each framework's peak resident memory against T.

With a GPU (numba-cuda sees a device, and PyTorch has CUDA), a CUDA section times gradc's cuda target beside
PyTorch eager's ``nn.LSTM`` on the GPU (cuDNN), each step copying its NumPy batch in and synchronizing, and
reports ratios to gradc-cuda; elsewhere the report says why it was not measured.

    pip install -e ".[bench]"
    python benchmarks/lstm_step.py                  # a markdown report on stdout
    python benchmarks/lstm_step.py --json out.json  # also the raw figures

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
from mlp_step import child as run_child
from mlp_step import cuda_section, gradc_cuda_step, machine, peak_resident_mib, publish, versions
from mlp_step import interleaved as run_interleaved

LR = 0.01
BATCH, STEPS, FEATURES, UNITS = 32, 50, 16, 128
Step = Callable[[], float]


def source(steps: int = STEPS) -> str:
    return (f"model lstm_bench\ninput x: f32[N, {steps}, {FEATURES}]\ninput y: f32[N, 1]\n"
            f"pred = x -> lstm({UNITS}) -> dense(1)\nloss L = mse(pred, y)\n")


def data(batch: int, steps: int = STEPS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, steps, FEATURES)).astype(np.float32),
            rng.normal(size=(batch, 1)).astype(np.float32))


def setup_gradc(batch: int, steps: int = STEPS) -> Step:
    import gradc

    program = gradc.compile(gradc.loads(source(steps)), cache=False)
    x, y = data(batch, steps)
    feeds = {"x": x, "y": y}
    return lambda: program.step(feeds, lr=LR, validate=False)


class _TorchModel:
    """nn.LSTM and the linear head; built lazily so that the module imports without PyTorch."""

    @staticmethod
    def make():
        import torch

        torch.manual_seed(0)

        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
                self.head = torch.nn.Linear(UNITS, 1)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.head(out[:, -1])

        return Model()


def _torch_step(model, batch: int, steps: int = STEPS, on_gpu: bool = False) -> Step:
    """On the GPU, each step copies its NumPy batch in and synchronizes instead of reading the loss back."""
    import torch

    x, y = data(batch, steps)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    params = list(model.parameters())

    def step() -> float:
        inputs, labels = (tx.cuda(), ty.cuda()) if on_gpu else (tx, ty)
        for p in params:
            p.grad = None
        loss = torch.nn.functional.mse_loss(model(inputs), labels)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
        if on_gpu:
            torch.cuda.synchronize()
            return 0.0
        return float(loss.detach())

    return step


def setup_torch(batch: int, steps: int = STEPS) -> Step:
    return _torch_step(_TorchModel.make(), batch, steps)


def setup_torch_compile(batch: int, steps: int = STEPS) -> Step:
    import torch

    return _torch_step(torch.compile(_TorchModel.make()), batch, steps)


def setup_gradc_cuda(batch: int, steps: int = STEPS) -> Step:
    return gradc_cuda_step(source(steps), *data(batch, steps))


def setup_torch_cuda(batch: int, steps: int = STEPS) -> Step:
    """PyTorch eager on the GPU (cuDNN's LSTM), under the same terms: the NumPy batch copied in each step."""
    import torch

    if not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA device")
    return _torch_step(_TorchModel.make().cuda(), batch, steps, on_gpu=True)


FRAMEWORKS: dict[str, Callable[..., Step]] = {
    "gradc": setup_gradc,
    "pytorch-eager": setup_torch,
    "torch.compile": setup_torch_compile,
}
CUDA_FRAMEWORKS: dict[str, Callable[..., Step]] = {"gradc-cuda": setup_gradc_cuda, "pytorch-cuda": setup_torch_cuda}


def child(args: list[str]) -> str:
    return run_child(args, __file__)


def peak_memory_child(name: str, steps: int) -> None:
    step = FRAMEWORKS[name](BATCH, steps)
    for _ in range(3):
        step()
    print(f"{peak_resident_mib():.0f}")


def compile_child(steps: int) -> None:
    import gradc

    start = time.perf_counter()
    program = gradc.compile(gradc.loads(source(steps)), cache=False)
    program.backend.compile(("train_sgd",))
    print(f"{time.perf_counter() - start:.2f}")


def step_table(results: dict, base_name: str, batch: int = BATCH) -> list[str]:
    """Rows of ms per step, ratio to ``base_name`` and first-call seconds, from one interleaved run."""
    lines = ["| framework | ms per step | ratio | first call (s) |", "|---|---|---|---|"]
    base = results["median_ms"].get(base_name, {}).get(batch)
    for name, per_batch in results["median_ms"].items():
        ms = per_batch[batch]
        ratio = ms / base if base else float("nan")
        first = results["first_call_s"].get(f"{name}@{batch}", float("nan"))
        lines.append(f"| {name} | {ms:.2f} | {ratio:.2f}x | {first:.2f} |")
    for name, why in results["missing"].items():
        lines.append(f"| {name} | not installed ({why}) | | |")
    return lines


def report(results: dict) -> str:
    found = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [f"machine: {results['machine']}", f"versions: {found}", f"command: {results['command']}", "",
             f"ms per training step, B={BATCH}, T={STEPS}, F={FEATURES}, H={UNITS} (median of interleaved rounds); "
             "ratio = framework / gradc", ""]
    lines += step_table(results, "gradc")
    cuda = results.get("cuda")
    if isinstance(cuda, dict):
        lines += ["", f"CUDA ({cuda['device']}): ms per step; ratio = framework / gradc-cuda", ""]
        lines += step_table(cuda, "gradc-cuda")
    elif cuda:
        lines += ["", f"CUDA: not measured ({cuda})"]
    lines += ["", "gradc cold compile of the training step (fresh process, no cache), by T: "
              + ", ".join(f"T={t}: {s} s" for t, s in results["compile_s"].items())]
    lines += memory_table(results)
    return "\n".join(lines)


def memory_table(results: dict) -> list[str]:
    """The peak resident memory rows, by sequence length, when they were measured."""
    if not results.get("peak_mib") or not results.get("memory_steps"):
        return []
    lines = ["", "peak resident memory (MiB), each framework alone in its own process, by T:", "",
             "| framework | " + " | ".join(f"T={t}" for t in results["memory_steps"]) + " |",
             "|---|" + "---|" * len(results["memory_steps"])]
    for name, by_steps in results["peak_mib"].items():
        lines.append(f"| {name} | " + " | ".join(str(by_steps[t]) for t in results["memory_steps"]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=list(FRAMEWORKS),
                        help="the CPU frameworks to time (none: only the CUDA section, where a GPU is present)")
    parser.add_argument("--compile-steps", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--memory-steps", type=int, nargs="*", default=[50, 200, 800])
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("FRAMEWORK", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", type=int, metavar="T", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_child:
        return peak_memory_child(args.peak_memory_child[0], int(args.peak_memory_child[1]))
    if args.compile_child:
        return compile_child(args.compile_child)
    results = {"machine": machine(), "versions": versions(), "command": " ".join(["python", *sys.argv]),
               "memory_steps": args.memory_steps}
    results.update(run_interleaved([BATCH], args.rounds, args.steps, args.frameworks, FRAMEWORKS))
    results["cuda"] = cuda_section([BATCH], args.rounds, args.steps, CUDA_FRAMEWORKS)
    results["compile_s"] = {t: child(["--compile-child", str(t)]) for t in args.compile_steps}
    results["peak_mib"] = {name: {t: child(["--peak-memory-child", name, str(t)]) for t in args.memory_steps}
                           for name in args.frameworks if name not in results["missing"]}
    publish(report(results), results, args.json)


if __name__ == "__main__":
    main()
