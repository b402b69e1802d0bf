"""One training step of a transformer encoder layer, gradc beside PyTorch eager
(``nn.TransformerEncoderLayer``) and torch.compile in the same run.

The layer is the issue's configuration: d = 64, 4 heads, sequences of T = 32, batch B = 32; its feed-forward
network has 256 units (4 d), ReLU, post-LN (PyTorch's default), dropout 0 on both sides (random masks differ
between frameworks); gradc runs the standard library's ``transformer_encoder`` block, the same layers with
the same weight shapes. The step is forward, backward and a plain SGD update of the mean squared error of the
layer's output against a target, float32. Frameworks are timed in interleaved rounds and reported as medians
and ratios to gradc. Child processes measure each framework's peak resident memory at T = 32, 128 and 512:
attention's [T, S] scores are never stored by gradc, so its memory grows with T, not T^2.

With a GPU (numba-cuda sees a device, and PyTorch has CUDA), a CUDA section times gradc's cuda target beside
PyTorch eager on the GPU (the NumPy batch copied in each step on both sides, the loss not read back); elsewhere
the report says why it was not measured.

    pip install -e ".[bench]"
    python benchmarks/transformer_step.py                  # a markdown report on stdout
    python benchmarks/transformer_step.py --json out.json  # also the raw figures

PyTorch is optional: without it the report says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from lstm_step import memory_table, step_table
from mlp_step import child as run_child
from mlp_step import cuda_section, gradc_cuda_step, machine, peak_resident_mib, publish, versions
from mlp_step import interleaved as run_interleaved

LR = 0.01
BATCH, STEPS, DIM, HEADS, HIDDEN = 32, 32, 64, 4, 256
Step = Callable[[], float]


def source(steps: int = STEPS) -> str:
    return (f"import std\n\nmodel transformer_bench\ninput x: f32[N, {steps}, {DIM}]\ninput y: f32[N, {steps}, {DIM}]\n"
            f"h = x -> transformer_encoder(dim={DIM}, heads={HEADS}, hidden={HIDDEN}, p=0.0)\nloss L = mse(h, y)\n")


def data(batch: int, steps: int = STEPS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, steps, DIM)).astype(np.float32),
            rng.normal(size=(batch, steps, DIM)).astype(np.float32))


def setup_gradc(batch: int, steps: int = STEPS) -> Step:
    import gradc

    program = gradc.compile(gradc.loads(source(steps)), cache=False)
    x, y = data(batch, steps)
    feeds = {"x": x, "y": y}
    return lambda: program.step(feeds, lr=LR, validate=False)


def _torch_step(compiled: bool, batch: int, steps: int, on_gpu: bool = False) -> Step:
    import torch

    if on_gpu and not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA device")
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(DIM, HEADS, HIDDEN, dropout=0.0, batch_first=True)
    layer = layer.cuda() if on_gpu else layer
    model = torch.compile(layer) if compiled else layer
    x_host, y_host = data(batch, steps)
    params = list(layer.parameters())

    def step() -> float:
        x, y = torch.from_numpy(x_host), torch.from_numpy(y_host)
        x, y = (x.cuda(), y.cuda()) if on_gpu else (x, y)
        for p in params:
            p.grad = None
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
        if on_gpu:
            torch.cuda.synchronize()
            return 0.0
        return float(loss.detach())

    return step


FRAMEWORKS: dict[str, Callable[..., Step]] = {
    "gradc": setup_gradc,
    "pytorch-eager": lambda batch, steps=STEPS: _torch_step(False, batch, steps),
    "torch.compile": lambda batch, steps=STEPS: _torch_step(True, batch, steps),
}
CUDA_FRAMEWORKS: dict[str, Callable[..., Step]] = {
    "gradc-cuda": lambda batch, steps=STEPS: gradc_cuda_step(source(steps), *data(batch, steps)),
    "pytorch-cuda": lambda batch, steps=STEPS: _torch_step(False, batch, steps, on_gpu=True),
}


def peak_memory_child(name: str, steps: int) -> None:
    step = FRAMEWORKS[name](BATCH, steps)
    for _ in range(3):
        step()
    print(f"{peak_resident_mib():.0f}")


def report(results: dict) -> str:
    found = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [f"machine: {results['machine']}", f"versions: {found}", f"command: {results['command']}", "",
             f"ms per training step of a transformer encoder layer, B={BATCH}, T={STEPS}, d={DIM}, {HEADS} heads, "
             f"feed-forward {HIDDEN} (median of interleaved rounds); ratio = framework / gradc", ""]
    lines += step_table(results, "gradc", BATCH)
    cuda = results.get("cuda")
    if isinstance(cuda, dict):
        lines += ["", f"CUDA ({cuda['device']}): ms per step; ratio = framework / gradc-cuda", ""]
        lines += step_table(cuda, "gradc-cuda", BATCH)
    elif cuda:
        lines += ["", f"CUDA: not measured ({cuda})"]
    return "\n".join(lines + memory_table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--frameworks", nargs="*", default=list(FRAMEWORKS), choices=list(FRAMEWORKS),
                        help="the CPU frameworks to time (none: only the CUDA section, where a GPU is present)")
    parser.add_argument("--memory-steps", type=int, nargs="*", default=[32, 128, 512])
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("FRAMEWORK", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_child:
        return peak_memory_child(args.peak_memory_child[0], int(args.peak_memory_child[1]))
    results = {"machine": machine(), "versions": versions(), "command": " ".join(["python", *sys.argv]),
               "memory_steps": args.memory_steps}
    results.update(run_interleaved([BATCH], args.rounds, args.steps, args.frameworks, FRAMEWORKS))
    results["cuda"] = cuda_section([BATCH], args.rounds, args.steps, CUDA_FRAMEWORKS)
    results["peak_mib"] = {
        name: {t: run_child(["--peak-memory-child", name, str(t)], __file__) for t in args.memory_steps}
        for name in args.frameworks if name not in results["missing"]}
    publish(report(results), results, args.json)


if __name__ == "__main__":
    main()
