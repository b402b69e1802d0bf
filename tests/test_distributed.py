"""Data-parallel training over MPI: the sharded step's arithmetic (in one process), then 2-rank jobs through
``mpiexec`` on this machine: the same losses and parameters as one process for every optimizer, a rank that
raises or is killed stops every rank quickly, and a run continues from its checkpoint on another number of
ranks. The MPI jobs are skipped, with the reason, when the ``mpi`` extra (mpi4py, an mpiexec) is missing."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gradc
from gradc.runtime.distributed.exchange import Exchanger
from gradc.runtime.distributed.launch import rank_environment, without_workers
from gradc.runtime.distributed.step import DataParallelStep, shard_bounds
from gradc.runtime.distributed.world import SINGLE, World, launched_size
from gradc.runtime.training.checkpoints import Checkpoint

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp_digits.model"


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'the mpi extra is not installed (pip install -e ".[mpi]")'
    beside = Path(sys.executable).parent / "mpiexec"
    if not beside.is_file() and shutil.which("mpiexec") is None:
        return "no mpiexec found"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


# ---------------------------------------------------------------- in one process


@pytest.mark.parametrize("rows,size", [(64, 2), (7, 2), (5, 3), (1, 2), (10, 4)])
def test_shards_cover_the_batch_in_order(rows, size):
    bounds = [shard_bounds(rows, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_workers_option_is_taken_out_of_what_each_rank_runs():
    assert without_workers(["train", "m.model", "--workers", "2", "--epochs", "3"]) == ["train", "m.model",
                                                                                      "--epochs", "3"]
    assert without_workers(["train", "--workers=4", "m.model"]) == ["train", "m.model"]
    env = rank_environment(2) if not os.environ.get("NUMBA_NUM_THREADS") else {"NUMBA_NUM_THREADS": "1"}
    assert int(env["NUMBA_NUM_THREADS"]) >= 1


def test_a_plain_process_is_a_world_of_one(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert launched_size() == 1
    monkeypatch.setenv("PMI_SIZE", "1")
    assert launched_size() == 1


DROPOUT_MODEL = """model dp_unit
input x: f32[N, 6]
input y: i64[N]
logits = x -> dense(8) -> tanh -> dropout(0.3) -> dense(3)
loss L = cross_entropy(logits, y)
"""


BATCHNORM_MODEL = DROPOUT_MODEL.replace("dense(8) -> tanh", "dense(8) -> batchnorm -> tanh")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("model", [DROPOUT_MODEL, BATCHNORM_MODEL], ids=["dropout", "batchnorm"])
def test_the_sharded_step_on_one_rank_is_the_compiled_step(optimizer, model):
    """A rank's graph (share 1, batch statistics summed over one rank), the gradients entry point, the
    host-side exchange and update give the fused training step's result."""
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(9, 6)).astype(np.float32), "y": rng.integers(0, 3, 9)}
    fused, split = (gradc.compile(gradc.loads(model), seed=1) for _ in range(2))
    for program in (fused, split):
        program.set_weight_decay(0.01)
        program.set_optimizer(optimizer, lr=0.05)
        program.mask_rng = np.random.default_rng(7)
    stepper = DataParallelStep(split, Exchanger(SINGLE))
    for _ in range(3):
        expected = fused.step(batch)
        assert stepper.step(batch, 0.05) == pytest.approx(expected, rel=1e-6)
    for name, value in fused.params.items():
        np.testing.assert_allclose(split.params[name], value, rtol=1e-5, atol=1e-6)
    stepper.close()
    assert not split.data_parallel


def test_a_ranks_graph_scales_its_objective_and_sums_batch_statistics_over_ranks():
    from gradc.compiler.collectives import install_sum_over_ranks

    program = gradc.compile(gradc.loads(BATCHNORM_MODEL), seed=1)
    program.set_data_parallel(True)
    graph = program.training_mode().backend.graph
    assert [n.op for n in graph.nodes() if n.op == "ranks_sum"], "batch statistics summed over the ranks"
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(6, 6)).astype(np.float32), "y": rng.integers(0, 3, 6)}
    program.mask_rng = np.random.default_rng(3)
    whole = program.gradients({**batch, "world.share": np.float32(1.0)}, params_only=True)
    program.mask_rng = np.random.default_rng(3)  # the same dropout masks
    calls = []
    install_sum_over_ranks(lambda x: (calls.append(x.shape), x.__imul__(2)))  # two ranks holding the same rows
    try:
        rank = program.gradients({**batch, "world.share": np.float32(0.5)}, params_only=True)
    finally:
        install_sum_over_ranks(None)
    assert calls, "the compiled step calls the exchange"
    # each of the two ranks: half of the objective and of every gradient, with the whole batch's statistics
    assert float(rank["objective/total"]) == pytest.approx(0.5 * float(whole["objective/total"]), rel=1e-5)
    for name in program.params:
        np.testing.assert_allclose(2 * rank[f"grad/{name}"], whole[f"grad/{name}"], rtol=1e-4, atol=1e-6)


def test_masks_of_a_shard_are_its_rows_of_the_whole_batch_masks():
    program = gradc.compile(gradc.loads(DROPOUT_MODEL), seed=1)
    mode = program.training_mode()
    batch = {"x": np.zeros((10, 6), np.float32), "y": np.zeros(10, np.int64)}
    program.mask_rng = np.random.default_rng(5)
    whole = program._masks(batch, mode)
    program.mask_rng = np.random.default_rng(5)
    part = program._masks({k: v[4:7] for k, v in batch.items()}, mode, shard=(4, 7, 10))
    for name in whole:
        np.testing.assert_array_equal(part[name], whole[name][4:7])


def test_two_ranks_halves_sum_to_the_whole_batch_gradient():
    """What the all-reduce adds: each rank's gradients weighted by its share of the rows."""
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(7, 6)).astype(np.float32), "y": rng.integers(0, 3, 7)}
    program = gradc.compile(gradc.loads(DROPOUT_MODEL.replace("-> dropout(0.3) ", "")), seed=1)
    whole = program.gradients(batch)
    total = {f"grad/{name}": 0.0 for name in program.params}
    for rank in range(2):
        start, stop = shard_bounds(7, rank, 2)
        part = program.gradients({k: v[start:stop] for k, v in batch.items()})
        for k in total:
            total[k] = total[k] + part[k] * ((stop - start) / 7)
    for k, value in total.items():
        np.testing.assert_allclose(value, whole[k], rtol=1e-5, atol=1e-7)
    assert World(1, 2).label() == "rank 1 of 2"


# ---------------------------------------------------------------- on two ranks, through mpiexec


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


def _gradc(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradc", *args]


@needs_mpi
@pytest.mark.slow
def test_two_ranks_train_like_one_process_for_every_optimizer(tmp_path):
    from mpi_training import train_all

    out = tmp_path / "two.json"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(Path(__file__).parent / "mpi_training.py"),
                           str(out)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    two, one = json.loads(out.read_text()), train_all()
    for name, figures in one.items():
        np.testing.assert_allclose(two[name]["losses"], figures["losses"], rtol=2e-5, err_msg=name)
        np.testing.assert_allclose(two[name]["val_losses"], figures["val_losses"], rtol=2e-5, err_msg=name)
        for param, values in figures["params"].items():
            if name.startswith("batchnorm/") and param.endswith(("dense1.bias", "running_mean")):
                continue  # a bias before batchnorm has no gradient but round-off, which Adam scales up
            tolerance = 1e-3 if name.startswith("batchnorm/") else 1e-4  # (and the weights' tiny ones, a little)
            np.testing.assert_allclose(two[name]["params"][param], values, rtol=tolerance, atol=1e-5,
                                       err_msg=f"{name}: {param}")


@needs_mpi
def test_workers_option_trains_and_writes_one_run_folder(tmp_path):
    done = subprocess.run(_gradc("train", str(MLP), "--workers", "2", "--epochs", "2", "--out", str(tmp_path / "run")),
                          capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 ranks, 32 rows each" in done.stdout
    assert done.stdout.count("epoch   2/2") == 1  # rank 0 alone reports
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["world_size"] == 2
    checkpoint = Checkpoint.load(tmp_path / "run" / "last.npz")
    assert checkpoint.meta["world_size"] == 2


@needs_mpi
def test_a_rank_that_raises_stops_every_rank_with_its_message(tmp_path):
    """Rank 1 cannot read its data (an MPMD launch gives it another command line); rank 0 waits in the first
    exchange: both stop at once, the message names rank 1 and its error."""
    started = time.monotonic()
    done = subprocess.run([_mpiexec(), "-n", "1", *_gradc("train", str(MLP), "--epochs", "2", "--out", "a"), ":",
                           "-n", "1", *_gradc("train", str(MLP), "--epochs", "2", "--out", "b",
                                              "--data", str(tmp_path / "missing.npz"))],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode != 0
    assert "rank 1 of 2: error: data file not found" in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - started < 60


@needs_mpi
@pytest.mark.slow
def test_a_killed_rank_stops_the_others_and_the_run_resumes_on_one(tmp_path):
    run = tmp_path / "run"
    job = subprocess.Popen(_gradc("train", str(MLP), "--workers", "2", "--epochs", "100000", "--early-stopping",
                                  "0", "--out", str(run)), cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
            assert job.poll() is None and time.monotonic() < deadline, "the job did not get through 3 epochs"
            time.sleep(0.2)
        rank1 = _rank_pid(str(run), 1)
        os.kill(rank1, signal.SIGKILL)
        killed = time.monotonic()
        _, err = job.communicate(timeout=30)
        assert time.monotonic() - killed < 30
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "workers stopped" in err and "--resume" in err
    epochs = len((run / "metrics.jsonl").read_text().splitlines())
    resumed = subprocess.run(_gradc("train", str(MLP), "--resume", str(run / "last.npz"), "--epochs",
                                    str(epochs + 2), "--early-stopping", "0", "--out", str(tmp_path / "more")),
                             capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at epoch {epochs + 1}" in resumed.stdout or f"epoch {epochs + 1:>3}/" in resumed.stdout


def _rank_pid(marker: str, rank: int) -> int:
    """The process of ``rank`` among the running gradc ranks whose command line holds ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in command and f"PMI_RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no process of rank {rank} found")


ATTENTION_MODEL = """model dp_attention
input q: f32[N, 2, 6, 4]
input k: f32[N, 2, 7, 4]
input v: f32[N, 2, 7, 3]
input w: f32[3, 2]
output a = attention(q, k, v, dropout=0.4)
loss L = mean(sum(a @ w, axis=[1, 2, 3]))
"""


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_attention_dropout_of_shards_is_the_whole_batchs(target):
    """A shard's attention entries continue the whole batch's numbering (the seed's upper bits), so its
    dropped weights, and the shards' summed gradients, are the whole batch's."""
    rng = np.random.default_rng(4)
    batch = {"q": rng.normal(size=(5, 2, 6, 4)), "k": rng.normal(size=(5, 2, 7, 4)),
             "v": rng.normal(size=(5, 2, 7, 3)), "w": rng.normal(size=(3, 2))}
    batch = {name: value.astype(np.float32) for name, value in batch.items()}
    program = gradc.compile(gradc.loads(ATTENTION_MODEL), target=target)
    program.set_data_parallel(True)
    program.mask_rng = np.random.default_rng(9)
    whole = program.gradients({**batch, "world.share": np.float32(1.0)}, params_only=False)
    total = 0.0
    for rank in range(2):
        start, stop = shard_bounds(5, rank, 2)
        program.mask_rng = np.random.default_rng(9)  # every rank draws the same seed
        part = program.gradients({**{k: v[start:stop] if k != "w" else v for k, v in batch.items()},
                                  "world.share": np.float32((stop - start) / 5)}, shard=(start, stop, 5))
        np.testing.assert_allclose(part["grad/q"], whole["grad/q"][start:stop], rtol=1e-5, atol=1e-6)
        total = total + part["grad/w"]
    np.testing.assert_allclose(total, whole["grad/w"], rtol=1e-5, atol=1e-6)


def test_graph_shows_a_ranks_training_graph(cli):
    model = ROOT / "models" / "cnn_digits.model"
    shown = cli("graph", str(model), "--train", "--data-parallel", "--stage", "data-parallel")
    assert shown.code == 0, shown
    assert shown.out.count("ranks_sum(") == 4 and 'input "world.share"' in shown.out  # two batchnorms' mean, var
    plain = cli("graph", str(model), "--train", "--stage", "data-parallel")
    assert "ranks_sum(" not in plain.out and "world.share" not in plain.out
    refused = cli("graph", str(model), "--data-parallel")
    assert refused.code == 1 and "add --train" in refused.err


@needs_mpi
def test_ranks_on_one_machine_share_its_cores():
    """Under a plain mpiexec (no NUMBA_NUM_THREADS), each rank takes the cores over the ranks on the machine."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    script = ("from gradc.runtime.distributed.world import current_world, share_cores; "
              "print('threads', share_cores(current_world()))")
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert done.stdout.split().count(str(expected)) == 2, done.stdout
