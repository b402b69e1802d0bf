"""One training step of an MLP, gradc beside PyTorch (eager and torch.compile), JAX jit and NumPy.

The step is forward, backward and a plain SGD update of the MLP 784-256-256-10 (ReLU, softmax
cross-entropy), float32, on synthetic data. Frameworks are timed in interleaved rounds in one process
and reported as medians and as ratios to gradc; first-call (compile) times are recorded; peak memory is
measured for each framework alone in its own process; and gradc's cold compile time is measured for MLPs
of growing depth, each in a fresh process without the cache.

    pip install -e ".[bench]"
    python benchmarks/mlp_step.py                    # everything, a markdown report on stdout
    python benchmarks/mlp_step.py --json out.json    # also the raw figures

With a GPU (numba-cuda sees a device, and PyTorch has CUDA), a CUDA section times gradc's cuda target beside
PyTorch eager on the GPU, each step copying its NumPy batch in and synchronizing, and reports ratios to
gradc-cuda; elsewhere the report says why it was not measured.

PyTorch and JAX are optional: a framework that is not installed is reported as missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

LR = 0.01
PAUSE_S = 1.0
SIZES = (784, 256, 256, 10)
Step = Callable[[], float]


def mlp_source(hidden: tuple[int, ...] = SIZES[1:-1], inputs: int = SIZES[0], classes: int = SIZES[-1]) -> str:
    layers = " -> ".join(f"dense({h}, init=he_normal) -> relu" for h in hidden)
    return (f"model mlp_bench\ninput x: f32[N, {inputs}]\ninput y: i64[N]\n"
            f"logits = x -> {layers} -> dense({classes})\nloss L = cross_entropy(logits, y)\n")


def data(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, SIZES[0])).astype(np.float32), rng.integers(0, SIZES[-1], size=batch)


def he_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / a), size=(a, b)).astype(np.float32), np.zeros(b, np.float32))
            for a, b in itertools.pairwise(SIZES)]


# ---------------------------------------------------------------- frameworks: setup(batch) -> step


def setup_gradc(batch: int) -> Step:
    import gradc

    program = gradc.compile(gradc.loads(mlp_source()), cache=False)
    x, y = data(batch)
    feeds = {"x": x, "y": y}
    return lambda: program.step(feeds, lr=LR, validate=False)


def setup_numpy(batch: int) -> Step:
    x, y = data(batch)
    params = he_weights()
    onehot = np.eye(SIZES[-1], dtype=np.float32)[y]

    def step() -> float:
        acts = [x]
        for k, (w, b) in enumerate(params):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if k < len(params) - 1 else z)
        z = acts[-1]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(p[np.arange(batch), y])))
        g = (p - onehot) / batch
        for k in range(len(params) - 1, -1, -1):
            w, b = params[k]
            gw, gb = acts[k].T @ g, g.sum(axis=0)
            if k:
                g = (g @ w.T) * (acts[k] > 0)
            w -= LR * gw
            b -= LR * gb
        return loss

    return step


def _torch_model():
    import torch

    layers = []
    for k, (w, b) in enumerate(he_weights()):
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if k < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_step(model, batch: int, on_gpu: bool = False, make_data=None) -> Step:
    """On the GPU, each step copies its NumPy batch in and synchronizes instead of reading the loss back.
    ``make_data(batch)`` gives the inputs and labels (this benchmark's by default)."""
    import torch

    x, y = (make_data or data)(batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    params = list(model.parameters())

    def step() -> float:
        inputs, labels = (tx.cuda(), ty.cuda()) if on_gpu else (tx, ty)
        for p in params:
            p.grad = None
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
        if on_gpu:
            torch.cuda.synchronize()
            return 0.0
        return float(loss)

    return step


def setup_torch(batch: int) -> Step:
    return _torch_step(_torch_model(), batch)


def setup_torch_compile(batch: int) -> Step:
    import torch

    return _torch_step(torch.compile(_torch_model()), batch)


def setup_jax(batch: int) -> Step:
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in he_weights()]
    x, y = data(batch)
    jx, jy = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(params, x, y):
        h = x
        for k, (w, b) in enumerate(params):
            h = h @ w + b
            if k < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def update(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss

    state = {"params": params}

    def step() -> float:
        state["params"], loss = update(state["params"], jx, jy)
        return float(loss.block_until_ready())

    return step


def setup_gradc_cuda(batch: int) -> Step:
    return gradc_cuda_step(mlp_source(), *data(batch))


def gradc_cuda_step(source: str, x: np.ndarray, y: np.ndarray) -> Step:
    """gradc's cuda target: the batch is copied in each step (from NumPy), the loss stays on the device."""
    from numba import cuda

    import gradc

    program = gradc.compile(gradc.loads(source), target="cuda", cache=False)
    feeds = {"x": x, "y": y}

    def step() -> float:
        program.step(feeds, lr=LR, validate=False, fetch=False)
        cuda.synchronize()
        return 0.0

    return step


def setup_torch_cuda(batch: int) -> Step:
    """PyTorch eager on the GPU, under the same terms: the NumPy batch copied in each step, loss not read."""
    import torch

    if not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA device")
    return _torch_step(_torch_model().cuda(), batch, on_gpu=True)


FRAMEWORKS: dict[str, Callable[[int], Step]] = {
    "gradc": setup_gradc,
    "pytorch": setup_torch,
    "torch.compile": setup_torch_compile,
    "jax.jit": setup_jax,
    "numpy": setup_numpy,
}
CUDA_FRAMEWORKS: dict[str, Callable[[int], Step]] = {"gradc-cuda": setup_gradc_cuda, "pytorch-cuda": setup_torch_cuda}


def gpu_absent() -> str | None:
    """Why the CUDA section cannot run here, or None when a real GPU is present."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: the simulator's timings mean nothing"
    from numba import cuda

    return None if cuda.is_available() else "no CUDA device found"


def cuda_section(batches: list[int], rounds: int, steps: int,
                 frameworks: dict[str, Callable[..., Step]] | None = None) -> dict | str:
    """The CUDA section: the GPU frameworks timed interleaved (``frameworks``: this benchmark's own by default),
    with the device's name; or why it was not measured."""
    absent = gpu_absent()
    if absent is not None:
        return absent
    from numba import cuda

    frameworks = frameworks if frameworks is not None else CUDA_FRAMEWORKS
    results = interleaved(batches, rounds, steps, list(frameworks), frameworks)
    name = cuda.get_current_device().name
    results["device"] = name.decode() if isinstance(name, bytes) else str(name)
    return results


# ---------------------------------------------------------------- measuring


def interleaved(batches: list[int], rounds: int, steps: int, names: list[str],
                frameworks: dict[str, Callable[[int], Step]] | None = None) -> dict:
    """Median ms per step and first-call seconds, per framework and batch, frameworks interleaved
    (``frameworks``: name -> setup(batch) -> step; this benchmark's own by default)."""
    setups = frameworks if frameworks is not None else {**FRAMEWORKS, **CUDA_FRAMEWORKS}
    results: dict = {"median_ms": {}, "first_call_s": {}, "missing": {}}
    for batch in batches:
        ready: dict[str, Step] = {}
        for name in names:
            try:
                start = time.perf_counter()
                step = setups[name](batch)
                step()
                results["first_call_s"][f"{name}@{batch}"] = time.perf_counter() - start
                ready[name] = step
            except ImportError as exc:
                results["missing"][name] = str(exc)
        samples: dict[str, list[float]] = {name: [] for name in ready}
        order = list(ready.items())
        for round_index in range(rounds):
            # rotate the order each round, so no framework always follows the same one
            shift = round_index % len(order) if order else 0
            for name, step in order[shift:] + order[:shift]:
                # OpenBLAS and OpenMP workers spin for a while after each call; let the pools of the
                # framework that ran before go idle, as they would in a process that trains with one.
                time.sleep(PAUSE_S)
                for _ in range(2):  # warm
                    step()
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                samples[name].append((time.perf_counter() - start) / steps * 1000)
        for name, values in samples.items():
            results["median_ms"].setdefault(name, {})[batch] = statistics.median(values)
    return results


def child(args: list[str], script: str = __file__) -> str:
    """Run ``script`` with ``args`` in a fresh process; its output, or the last line of its error."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"error: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return done.stdout.strip()


def peak_memory_child(name: str, batch: int) -> None:
    step = FRAMEWORKS[name](batch)
    for _ in range(20):
        step()
    print(f"{peak_resident_mib():.0f}")


def peak_resident_mib() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space, which exec replaces; the
    rusage maximum would carry over the parent's peak into a child."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_depth_child(depth: int) -> None:
    import gradc

    start = time.perf_counter()
    program = gradc.compile(gradc.loads(mlp_source((256,) * depth)), cache=False)
    program.backend.compile(("train_sgd",))
    print(time.perf_counter() - start)


def cache_hit_child(cache_dir: str) -> None:
    os.environ["GRADC_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    import gradc

    imported = time.perf_counter()
    program = gradc.compile(gradc.loads(mlp_source()), cache=True)
    report = program.backend.compile(("train_sgd",))
    print(json.dumps({"import_s": imported - start, "beyond_import_s": time.perf_counter() - imported,
                      "hit": report.cache_hit}))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions() -> dict[str, str]:
    found = {}
    for module in ("gradc", "numba", "numpy", "torch", "jax"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            found[module] = "not installed"
    return found


def table(results: dict, batches: list[int], baseline: str) -> list[str]:
    lines = ["| framework | " + " | ".join(f"batch {b}" for b in batches) + " | first call (s) |",
             "|---|" + "---|" * (len(batches) + 1)]
    base_ms = results["median_ms"].get(baseline, {})
    for name, per_batch in results["median_ms"].items():
        cells = []
        for b in batches:
            ms = per_batch[b]
            ratio = ms / base_ms[b] if b in base_ms else float("nan")
            cells.append(f"{ms:.3f} ({ratio:.2f}x)")
        first = results["first_call_s"].get(f"{name}@{batches[0]}", float("nan"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {first:.2f} |")
    for name, why in results["missing"].items():
        lines.append(f"| {name} | not installed ({why}) |")
    return lines


def report(results: dict) -> str:
    found = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [f"machine: {results['machine']}", f"versions: {found}", "",
             "ms per training step (median of interleaved rounds); ratio = framework / gradc", ""]
    batches = results["batches"]
    lines += table(results, batches, "gradc")
    cuda = results.get("cuda")
    if isinstance(cuda, dict):
        lines += ["", f"CUDA ({cuda['device']}): ms per step; ratio = framework / gradc-cuda", ""]
        lines += table(cuda, batches, "gradc-cuda")
    elif cuda:
        lines += ["", f"CUDA: not measured ({cuda})"]
    if results.get("peak_mib"):
        lines += ["", "peak resident memory at batch 128, each framework alone in its own process (MiB):", ""]
        lines += [f"- {name}: {value}" for name, value in results["peak_mib"].items()]
    if results.get("compile_s"):
        lines += ["", "gradc cold compile of the training step (fresh process, no cache), seconds:", ""]
        lines += [f"- {depth} hidden layers: {value}" for depth, value in results["compile_s"].items()]
    if results.get("cache_hit"):
        lines += ["", f"gradc cache hit, fresh process: {results['cache_hit']}"]
    return "\n".join(lines)


def publish(text: str, results: dict, json_path: str | None) -> None:
    """Print a benchmark's markdown report; with ``--json``, also write its raw figures there."""
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2, default=str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=list(FRAMEWORKS))
    parser.add_argument("--depths", type=int, nargs="*", default=[4, 16, 64])
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("FRAMEWORK", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-depth-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-hit-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_child:
        return peak_memory_child(args.peak_memory_child[0], int(args.peak_memory_child[1]))
    if args.compile_depth_child is not None:
        return compile_depth_child(args.compile_depth_child)
    if args.cache_hit_child:
        return cache_hit_child(args.cache_hit_child)

    results = {"machine": machine(), "versions": versions(), "batches": args.batches,
               "command": " ".join(["python", *sys.argv])}
    results.update(interleaved(args.batches, args.rounds, args.steps, args.frameworks))
    results["cuda"] = cuda_section(args.batches, args.rounds, args.steps)
    if not args.no_memory:
        results["peak_mib"] = {name: child(["--peak-memory-child", name, "128"]) for name in args.frameworks
                               if name not in results["missing"]}
    results["compile_s"] = {d: child(["--compile-depth-child", str(d)]) for d in args.depths}
    import tempfile

    with tempfile.TemporaryDirectory() as cache_dir:
        child(["--cache-hit-child", cache_dir])  # fills the cache
        results["cache_hit"] = child(["--cache-hit-child", cache_dir])
    publish(report(results), results, args.json)


if __name__ == "__main__":
    main()
