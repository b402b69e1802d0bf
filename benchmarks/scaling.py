"""Data-parallel throughput on MPI: training samples per second on 1 rank and on 2 ranks of this machine, and
a cost model for N machines.

Configurations, all in one run, each in fresh processes started through ``mpiexec``:

- 1 rank, 1 thread: the fused training step (``Program.step``, what a plain ``gradc train`` runs), one BLAS
  thread and one Numba thread;
- 1 rank, 2 threads: the same with two Numba threads (gradc splits large products' rows across them);
- 2 ranks, 1 thread each: ``gradc train --workers 2``'s step: each rank takes half the global batch, computes
  its gradients, and one in-place ``Iallreduce`` per step sums them before the update.

Workloads: ``models/mlp_digits.model`` at its batch (64) and at batch 1024 (its data), and the benchmark MLP
(784-256-256-10) at batch 1024 (synthetic data). Reported: samples per second (global batch x steps /
seconds, median of rounds), the speed-up against 1 rank with 1 thread, and the all-reduce's share of a step on
2 ranks.

The cost model (``--cost-model``): for every model in models/, its parameters' bytes, a ring all-reduce's
traffic per rank and step (2 (N - 1) / N x the gradients' bytes), the measured training time per example on
one thread here, a ring all-reduce's time over a 10 Gb/s and a 100 Gb/s network (latency per message
included), and the batch size per rank at which computing a step takes as long as exchanging its gradients
(above it, compute dominates).

    pip install -e ".[mpi]"
    python benchmarks/scaling.py                     # a markdown report on stdout
    python benchmarks/scaling.py --cost-model --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from mlp_step import machine, mlp_source, publish, versions

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"mlp_digits": ("file", str(ROOT / "models" / "mlp_digits.model"), 64),
             "mlp_digits, batch 1024": ("file", str(ROOT / "models" / "mlp_digits.model"), 1024),
             "benchmark MLP": ("source", mlp_source(), 1024)}
CONFIGS = (("1 rank, 1 thread", 1, 1), ("1 rank, 2 threads", 1, 2), ("2 ranks, 1 thread each", 2, 1))
# a network's bandwidth (Gb/s) and the latency of one message (s): 10 Gb/s Ethernet through TCP, a 100 Gb/s
# RDMA fabric (InfiniBand, RoCE); assumed, not measured here
NETWORKS = ((10, 20e-6), (100, 3e-6))
RING_RANKS = 8


# ---------------------------------------------------------------- in each rank


def _program_and_batch(kind: str, what: str, batch: int):
    import gradc
    from gradc.runtime.training.fit import prepare, resolve_settings

    if kind == "file":
        program = gradc.compile(gradc.load(what), cache=False)
        settings = resolve_settings(program)
        train = prepare(program, None, settings).splits.train
        rng = np.random.default_rng(0)
        rows = rng.integers(0, len(next(iter(train.values()))), batch)
        return program, {k: v[rows] for k, v in train.items()}
    program = gradc.compile(gradc.loads(what), cache=False)
    rng = np.random.default_rng(0)
    return program, {"x": rng.normal(size=(batch, 784)).astype(np.float32), "y": rng.integers(0, 10, batch)}


def rank_child(workload: str, steps: int, rounds: int) -> None:
    """Time ``rounds`` rounds of ``steps`` steps of ``workload`` in this world; rank 0 prints JSON."""
    from gradc.runtime.distributed.exchange import Exchanger
    from gradc.runtime.distributed.step import DataParallelStep
    from gradc.runtime.distributed.world import current_world

    world = current_world()
    program, batch = _program_and_batch(*WORKLOADS[workload])
    program.set_optimizer("sgd", lr=0.01)
    program.mask_rng = np.random.default_rng(0)
    exchanger = Exchanger(world)
    if world.distributed:
        parallel = DataParallelStep(program, exchanger)
        step = lambda: parallel.step(batch, 0.01)
    else:
        step = lambda: program.step(batch, validate=False)
    for _ in range(3):
        step()
    seconds, shares = [], []
    for _ in range(rounds):
        exchanger.seconds = 0.0
        exchanger.agree(0.0, "the round's start")  # the ranks start each round together
        exchanger.seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            step()
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        shares.append(exchanger.seconds / elapsed)
    if world.is_root:
        rows = len(next(iter(batch.values())))
        best = statistics.median(seconds)
        print(json.dumps({"samples_per_s": rows * steps / best, "ms_per_step": 1000 * best / steps,
                          "allreduce_share": statistics.median(shares)}))


def cost_child(path: str, batch: int) -> None:
    """One thread: the training step's seconds per example at ``batch`` and the parameters' bytes."""
    program, data = _program_and_batch("file", path, batch)
    program.set_optimizer("sgd", lr=0.001)
    program.mask_rng = np.random.default_rng(0)
    for _ in range(3):
        program.step(data, validate=False)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(5):
            program.step(data, validate=False)
        times.append((time.perf_counter() - start) / 5)
    params = program.params
    print(json.dumps({"seconds_per_example": statistics.median(times) / batch,
                      "param_bytes": int(sum(v.nbytes for v in params.values())),
                      "params": int(sum(v.size for v in params.values()))}))


# ---------------------------------------------------------------- the driver


def _mpiexec() -> str:
    from gradc.runtime.distributed.launch import find_mpiexec

    return find_mpiexec()


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def measure(workload: str, ranks: int, threads: int, steps: int, rounds: int) -> dict:
    command = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--rank-child", workload, str(steps),
               str(rounds)]
    done = subprocess.run(command, env=_env(threads), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cost_model(batch: int) -> dict:
    rows = {}
    for path in sorted((ROOT / "models").glob("*.model")):
        done = subprocess.run([sys.executable, __file__, "--cost-child", str(path), str(batch)], env=_env(1),
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            rows[path.stem] = {"error": last.split("Error: ", 1)[-1]}
            continue
        rows[path.stem] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def ring_bytes(param_bytes: int, ranks: int) -> float:
    """What each rank sends (and receives) in a ring all-reduce of ``param_bytes``: reduce-scatter then
    all-gather, 2 (N - 1) / N of the buffer."""
    return 2 * (ranks - 1) / ranks * param_bytes


def ring_seconds(param_bytes: int, ranks: int, gbit: float, latency: float) -> float:
    """A ring all-reduce's time: 2 (N - 1) messages in turn, each paying the latency, and the traffic at the
    bandwidth."""
    return 2 * (ranks - 1) * latency + ring_bytes(param_bytes, ranks) * 8 / (gbit * 1e9)


def report(results: dict) -> str:
    found = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [f"machine: {results['machine']}", f"versions: {found}", f"command: {results['command']}", "",
             "training samples per second (median of rounds); speed-up against 1 rank with 1 thread; the "
             "all-reduce's share of a 2-rank step", "",
             "| workload | batch | " + " | ".join(name for name, _, _ in CONFIGS) + " | 2 ranks: all-reduce share |",
             "|---|---|" + "---|" * (len(CONFIGS) + 1)]
    for workload, by_config in results["throughput"].items():
        base = by_config[CONFIGS[0][0]]["samples_per_s"]
        cells = [f"{by_config[name]['samples_per_s']:,.0f} ({by_config[name]['samples_per_s'] / base:.2f}x)"
                 for name, _, _ in CONFIGS]
        share = by_config[CONFIGS[-1][0]]["allreduce_share"]
        lines.append(f"| {workload} | {WORKLOADS[workload][2]} | " + " | ".join(cells) + f" | {share:.1%} |")
    costs = results.get("cost_model")
    if costs:
        networks = " and ".join(f"{g} Gb/s with {lat * 1e6:g} us a message" for g, lat in NETWORKS)
        lines += ["", f"cost model, a ring all-reduce of the gradients over N = {RING_RANKS} machines (each rank sends "
                  "2 (N-1)/N of the gradients' bytes in 2 (N-1) messages), against compute measured here on one "
                  f"thread at batch {results['cost_batch']} ({networks}, assumed); the batch per rank above which "
                  "a step's compute takes longer than its exchange, so that the network stops being the "
                  "bottleneck:", "",
                  f"| model | parameters | gradient MB | ring MB per rank and step (N={RING_RANKS}) | us per example | "
                  + " | ".join(f"exchange ms, {g} Gb/s | batch per rank, {g} Gb/s" for g, _ in NETWORKS) + " |",
                  "|---|---|---|---|---|" + "---|---|" * len(NETWORKS)]
        for name, row in costs.items():
            if "error" in row:
                lines.append(f"| {name} | not measured: {row['error']} |")
                continue
            cells = []
            for gbit, latency in NETWORKS:
                seconds = ring_seconds(row["param_bytes"], RING_RANKS, gbit, latency)
                cells += [f"{seconds * 1e3:.3f}", f"{max(1, int(np.ceil(seconds / row['seconds_per_example']))):,}"]
            lines.append(f"| {name} | {row['params']:,} | {row['param_bytes'] / 1e6:.3f} | "
                         f"{ring_bytes(row['param_bytes'], RING_RANKS) / 1e6:.3f} | "
                         f"{row['seconds_per_example'] * 1e6:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cost-model", action="store_true", help="also time every model in models/")
    parser.add_argument("--cost-batch", type=int, default=64)
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--report", metavar="JSON", help="print the report of figures written before by --json")
    parser.add_argument("--rank-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--cost-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_child:
        return rank_child(args.rank_child[0], int(args.rank_child[1]), int(args.rank_child[2]))
    if args.cost_child:
        return cost_child(args.cost_child[0], int(args.cost_child[1]))
    if args.report:
        return print(report(json.loads(Path(args.report).read_text())))
    results = {"machine": machine(), "versions": versions(), "command": " ".join(["python", *sys.argv]),
               "throughput": {w: {name: measure(w, ranks, threads, args.steps, args.rounds)
                                  for name, ranks, threads in CONFIGS} for w in WORKLOADS}}
    if args.cost_model:
        results["cost_batch"] = args.cost_batch
        results["cost_model"] = cost_model(args.cost_batch)
    publish(report(results), results, args.json)


if __name__ == "__main__":
    main()
