"""The cuda target against the CPU target, on Numba's CUDA simulator (tiny shapes; conftest turns it on) or,
with GRADC_TEST_GPU=1, on a real GPU (``GRADC_TEST_GPU=1 pytest -m cuda``): every op case, every model's
forward and gradients, training steps with every optimizer, fit, the CLI, device residency, and the
message without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import MODELS, REAL_GPU, ROOT
from cuda_ptx import LaunchRecorder
from test_ops import CASES, build_case, case_id
from test_targets import MIXED_MODELS, TOLERANCE, WINDOW_OPS, assert_close

import gradc
from gradc.compiler.passes import optimize
from gradc.runtime.execution.backends import CpuBackend
from gradc.runtime.execution.cuda_backend import CudaBackend
from gradc.runtime.execution.sampling import random_inputs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]  # the simulator is slow
BATCH = 3  # tiny: the simulator runs every CUDA thread as a Python thread
# the models with layers of 32 units or more: a few rows and one epoch on the simulator
LARGER_MODELS = ("mlp_digits", "spirals_mlp", "residual_mlp", "autoencoder", "tied_autoencoder")
# residual_mlp runs the kernels mlp_digits runs (dense, relu, add; a block is front-end only) at 128 units,
# which takes the simulator 100 s; the mixed model "residual-blocks" runs the same block at 4 units here
# cnn_digits and conv_autoencoder run the window kernels that the op cases and the mixed model "convolutions"
# run here at a few channels; at 32-64 channels each takes the simulator many minutes
# the recurrent models run scans whose kernels the mixed model "recurrence" runs here at a few units; at their own
# sizes (T up to 50 steps, each a few launches of simulated threads) each would take the simulator minutes
# transformer_sort and grammar_lm run the attention kernels that the op cases and the mixed model "attention"
# run here
MODEL_NAMES = [m.stem for m in MODELS if m.stem not in ("residual_mlp", "cnn_digits", "conv_autoencoder",
                                                        "lstm_adding", "gru_sine", "rnn_parity",
                                                        "transformer_sort", "grammar_lm")]
PTX_COMPUTE_CAPABILITY = "9.0"  # Hopper (H100/H200), the GPUs this project is lent


@pytest.fixture(scope="module", autouse=True)
def launches():
    """Every kernel this module launches on the simulator, with its argument types: the last test compiles
    them all for a real GPU."""
    if REAL_GPU:
        yield None
        return
    with LaunchRecorder() as recorder:
        yield recorder


# the window ops' and attention's option variants share their kernels with each op's first case; the mixed
# models "convolutions" and "attention" run the options together here (attention's: causal, an additive mask
# with its gradient, padded keys)
CUDA_CASES = [c for c in CASES if not (c.op in (*WINDOW_OPS, "attention") and c.id)]


@pytest.mark.parametrize("case", CUDA_CASES, ids=case_id)
def test_op_on_cuda_matches_cpu(case):
    graph, _, arrays = build_case(case, "f32")
    optimized = optimize(graph)
    feeds = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()}
    cpu = CpuBackend(optimized).gradients(feeds, {})
    cuda = CudaBackend(optimized).gradients(feeds, {})
    assert_close(cpu, cuda, TOLERANCE["f32"])


# mlp_digits runs spirals_mlp's kernels (dense, relu, cross-entropy) at 128 units, 30 s on the simulator here;
# its training recipe (dropout) runs in test_every_model_trains_on_cuda_like_on_cpu
MATCHED_MODELS = [m for m in MODEL_NAMES if m != "mlp_digits"]


@pytest.fixture(scope="module")
def programs():
    """A cpu and a cuda program of every model these tests run, compiled once for this module."""
    compiled = {}
    for model in (m for m in MODELS if m.stem in MATCHED_MODELS):
        spec = gradc.load(model)
        compiled[model.stem] = (gradc.compile(spec, target="cpu", seed=1), gradc.compile(spec, target="cuda", seed=1))
    return compiled


@pytest.mark.parametrize("model", MATCHED_MODELS)
def test_models_on_cuda_match_cpu(programs, model):
    cpu, cuda = programs[model]
    inputs = random_inputs(cpu.graph, BATCH, np.random.default_rng(5))
    assert_close(cpu.run(inputs, grad=True), cuda.run(inputs, grad=True), TOLERANCE["f32"])
    other = random_inputs(cpu.graph, BATCH + 2, np.random.default_rng(6))  # another batch size, same program
    assert_close(cpu.run(other), cuda.run(other), TOLERANCE["f32"])


@pytest.mark.parametrize("source", MIXED_MODELS.values(), ids=MIXED_MODELS.keys())
def test_mixed_models_on_cuda_match_cpu(source):
    spec = gradc.loads(source)
    cpu, cuda = gradc.compile(spec, target="cpu"), gradc.compile(spec, target="cuda")
    inputs = random_inputs(cpu.graph, 2, np.random.default_rng(1))
    assert_close(cpu.run(inputs, grad=True), cuda.run(inputs, grad=True), TOLERANCE["f32"])


def test_attention_dropout_in_training_on_cuda_matches_cpu():
    """The training graph's gradients with dropout on the attention weights (the seed drawn alike on both):
    the kernels hash each weight's place as the cpu's do."""
    source = ("model t\ninput x: f32[N, 3, 4]\ninput y: f32[N, 3, 4]\n"
              "h = x -> multi_head_attention(heads=2, dim=4, causal=true, dropout=0.5)\nloss L = mse(h, y)\n")
    spec = gradc.loads(source)
    programs = [gradc.compile(spec, target=t, seed=1) for t in ("cpu", "cuda")]
    inputs = random_inputs(programs[0].graph, 2, np.random.default_rng(4))
    cpu, cuda = (p.gradients(inputs) for p in programs)
    assert_close(cpu, cuda, TOLERANCE["f32"])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_training_steps_on_cuda_match_cpu(optimizer):
    spec = gradc.load(ROOT / "models" / "softmax_regression.model")
    programs = [gradc.compile(spec, target=t, seed=3) for t in ("cpu", "cuda")]
    inputs = random_inputs(programs[0].graph, 4, np.random.default_rng(0))
    for program in programs:
        program.set_optimizer(optimizer)
    losses = {p.target: [p.step(inputs, lr=0.05) for _ in range(4)] for p in programs}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-5)
    assert losses["cuda"][-1] < losses["cuda"][0]
    for name, value in programs[0].params.items():
        np.testing.assert_allclose(programs[1].params[name], value, rtol=1e-5, atol=1e-6)
    for name, arrays in programs[0].optimizer.state.items():
        for want, got in zip(arrays, programs[1].optimizer.state[name], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_clipped_training_step_on_cuda_matches_cpu():
    """clip_norm's global norm and scale are nodes of the step: the same clipped updates on both targets (the
    limit is small, so every step is clipped)."""
    spec = gradc.load(ROOT / "models" / "softmax_regression.model")
    programs = [gradc.compile(spec, target=t, seed=3) for t in ("cpu", "cuda")]
    inputs = random_inputs(programs[0].graph, 4, np.random.default_rng(0))
    for program in programs:
        program.set_clip_norm(0.05)
    losses = {p.target: [p.step(inputs, lr=0.5) for _ in range(3)] for p in programs}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-5)
    for name, value in programs[0].params.items():
        np.testing.assert_allclose(programs[1].params[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_trains_on_cuda_like_on_cpu(model):
    """fit() on a few random rows, with the model's own training recipe (dropout, batchnorm and weight decay
    included): the same losses per epoch and the same parameters on both targets."""
    spec = gradc.load(ROOT / "models" / f"{model}.model")
    rows, batch, epochs = (4, 4, 1) if model in LARGER_MODELS else (12, 4, 2)
    losses, params = {}, {}
    for target in ("cpu", "cuda"):
        program = gradc.compile(spec, target=target, seed=2)
        if not program.graph.params():
            pytest.skip("nothing to train: the model has no parameters (forward and gradients are tested above)")
        data = random_inputs(program.graph, rows, np.random.default_rng(9))
        if all(np.ndim(v) == 0 for v in data.values()):  # scalar inputs, no dataset: training steps
            losses[target] = [program.step(data, lr=0.01) for _ in range(3)]
        else:
            result = program.fit(data, epochs=epochs, batch=batch, validation=0.0, test=0.0, quiet=True,
                                 write_run=False, early_stopping=0)
            losses[target] = [r["train_loss"] for r in result.history]
        params[target] = program.params
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-5)
    for name, value in params["cpu"].items():
        np.testing.assert_allclose(params["cuda"][name], value, rtol=1e-4, atol=1e-6)


def test_parameters_stay_on_the_device_between_steps():
    spec = gradc.load(ROOT / "models" / "softmax_regression.model")
    program = gradc.compile(spec, target="cuda", seed=0)
    inputs = random_inputs(program.graph, 4, np.random.default_rng(0))
    program.set_optimizer("adam", lr=0.1)
    program.step(inputs)
    mirror = program.backend.mirror
    device_params, device_state = dict(mirror.params), list(mirror.state)
    before = {k: v.copy() for k, v in program._params.items()}
    program.step(inputs)
    program.step(inputs)
    assert all(mirror.params[k] is v for k, v in device_params.items()), "parameters were uploaded again"
    assert all(a is b for a, b in zip(mirror.state, device_state, strict=True)), "optimizer state uploaded again"
    assert all(np.array_equal(program._params[k], v) for k, v in before.items()), "host copy changed per step"
    assert mirror.device_newer
    current = program.params  # copies back once
    assert not mirror.device_newer
    assert any(not np.array_equal(current[k], v) for k, v in before.items())
    # what the host writes in place is what the device uses next
    for value in current.values():
        value[...] = 0
    probs = program.run(inputs)["probs"]
    np.testing.assert_allclose(probs, np.full_like(probs, 1 / probs.shape[-1]), rtol=1e-6)


def test_the_training_loss_stays_on_the_device_until_the_epoch_ends():
    spec = gradc.load(ROOT / "models" / "tiny_regression.model")
    program = gradc.compile(spec, target="cuda")
    tracker = program.loss_tracker()
    assert not tracker.immediate
    inputs = random_inputs(program.graph, 4, np.random.default_rng(0))
    handles = [program.step(inputs, fetch=False) for _ in range(2)]
    assert not isinstance(handles[0], float)
    for step, handle in enumerate(handles, start=1):
        tracker.add(handle, 4, step)
    total, bad_step, _ = tracker.finish()
    assert bad_step == 0 and np.isfinite(total) and total > 0


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_on_cuda_names_its_epoch_and_step(cli, tmp_path):
    result = cli("train", ROOT / "models" / "tiny_regression.model", "--target", "cuda", "--epochs", "1",
                 "--optimizer", "sgd(lr=1e30)", "--out", tmp_path / "run")
    assert result.code == 1, result
    assert "the loss became" in result.err and "at epoch 1, step" in result.err, result


def test_train_eval_predict_run_and_emit_from_the_cli(cli, tmp_path):
    model = ROOT / "models" / "tiny_regression.model"
    trained = cli("train", model, "--target", "cuda", "--epochs", "1", "--out", tmp_path / "run")
    assert trained.code == 0, trained
    assert "test: loss" in trained.out
    evaluated = cli("eval", model, "--checkpoint", tmp_path / "run" / "last.npz", "--target", "cuda")
    on_cpu = cli("eval", model, "--checkpoint", tmp_path / "run" / "last.npz", "--target", "cpu")
    assert evaluated.code == 0 and evaluated.out == on_cpu.out, (evaluated, on_cpu)
    np.savez(tmp_path / "x.npz", x=np.array([-1.0, 0.0, 1.0], np.float32))
    predicted = cli("predict", model, "--checkpoint", tmp_path / "run" / "last.npz", "--inputs", tmp_path / "x.npz",
                    "--target", "cuda", "-o", tmp_path / "p.npz")
    assert predicted.code == 0, predicted
    ran = cli("run", ROOT / "models" / "polynomial.model", "-i", "x=1", "-i", "y=2", "--grad", "--target", "cuda")
    assert ran.out.split() == ["f", "12", "grad/x", "10", "grad/y", "7"], ran
    emitted = cli("compile", ROOT / "models" / "mlp_digits.model", "--target", "cuda", "--emit",
                  tmp_path / "src", "--no-cache")
    assert emitted.code == 0, emitted
    source = (tmp_path / "src" / "mlp_digits_cuda.py").read_text()
    assert "@cuda.jit" in source and "cuda.shared.array((16, 16), float32)" in source
    assert ("# k0 gemm: matmul | nodes %3 | lines 4 + epilogue k1 loop: add, relu, step | nodes %5 %6 %38 | "
            "lines 4") in source
    assert "launch_rows(" in source and "cuda.syncthreads()" in source
    assert "x1[i1, kk]" in source, "a transposed operand is read in place, not copied"


def test_generated_cuda_source_has_no_user_names(cli, write_model, tmp_path):
    path = write_model("model zebra_model\ninput quokka_in: f32[N, 3]\ninput wombat_t: f32[N]\n"
                       "param okapi_w: f32[4] = ones\nnarwhal_h = quokka_in -> dense(4) -> relu\n"
                       "loss axolotl_loss = mse(narwhal_h @ okapi_w, wombat_t)\n")
    result = cli("compile", path, "--target", "cuda", "--emit", tmp_path, "--no-cache")
    assert result.code == 0, result
    source = (tmp_path / "zebra_model_cuda.py").read_text()
    for name in ("zebra", "quokka", "wombat", "okapi", "narwhal", "axolotl", "dense1"):
        assert name not in source, name


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_split_step_on_cuda_matches_the_fused_step(optimizer):
    """Gradients to the host, then the update on the device (issue 13, item 6), equal a fused device step."""
    from test_training_parts import SPLIT_MODEL

    spec = gradc.loads(SPLIT_MODEL)
    rng = np.random.default_rng(5)
    batch = {"x": rng.normal(size=(BATCH, 3)).astype(np.float32), "y": rng.integers(0, 3, BATCH)}
    fused, split = (gradc.compile(spec, target="cuda", seed=2) for _ in range(2))
    for program in (fused, split):
        program.set_optimizer(optimizer, lr=0.05)
    for _ in range(2):
        fused.step(batch)
        split.apply_update(split.gradients(batch))
    for name, value in fused.params.items():
        np.testing.assert_allclose(split.params[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.skipif(REAL_GPU, reason="a GPU is present")
def test_without_a_gpu_the_cuda_target_names_the_simulator():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-m", "gradc", "run", str(ROOT / "models" / "polynomial.model"),
                             "-i", "x=1", "-i", "y=2", "--target", "cuda"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "no CUDA device found" in result.stderr and "NUMBA_ENABLE_CUDASIM=1" in result.stderr
    assert "Traceback" not in result.stderr


class _SlowLookups(dict):
    """A dict whose look-up yields to other threads, so a check-then-store without a lock is caught."""

    def get(self, key, default=None):
        value = super().get(key, default)
        time.sleep(0.005)
        return value


@pytest.mark.skipif(REAL_GPU, reason="a simulator fix")
def test_the_simulators_shared_arrays_are_one_per_block_even_when_threads_race():
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    from gradc.compiler.lower import cuda_lib  # importing it on the simulator applies the fix

    assert cuda_lib.ON_SIMULATOR
    shared = FakeCUDAShared(0)
    shared._allocations = _SlowLookups()
    arrays, barrier = [], threading.Barrier(8)

    def thread():
        barrier.wait()
        arrays.append(shared.array(4, np.float64))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(arrays) == 8 and all(a is arrays[0] for a in arrays), "threads of one block got different arrays"


@pytest.mark.skipif(REAL_GPU, reason="a simulator stress test")
def test_block_reductions_stay_right_with_fast_thread_switching():
    from gradc.compiler.lower import cuda_lib
    from gradc.compiler.lower.cuda_simulator import fast_thread_switching

    assert cuda_lib.ON_SIMULATOR
    source = "model s\ninput x: f32[N, 3]\ny = softmax(x)\noutput y\n"  # a max and a sum, tree-reduced per row
    program = CudaBackend(optimize(gradc.loads(source).graph))
    rng = np.random.default_rng(0)
    with fast_thread_switching():
        for _ in range(20):
            x = rng.normal(size=(16, 3)).astype(np.float32)
            e = np.exp(x - x.max(1, keepdims=True))
            got = program.forward({"x": x}, {})["y"]
            np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- last: everything launched above, for a GPU


@pytest.mark.skipif(REAL_GPU, reason="on a GPU every kernel is compiled and run for real")
def test_every_kernel_launched_here_compiles_for_a_real_gpu(launches, tmp_path):
    """The simulator never type-checks a kernel: compile each one the tests above launched (every op case,
    every model's forward, gradients and training recipe, every optimizer) to PTX through NVVM, with the
    argument types a device would see, and the matmul kernels at every tile size."""
    if not launches.launches:
        pytest.skip("run with the rest of this module: it compiles the kernels the other tests launched")
    path = tmp_path / "launches.json"
    launches.dump(path)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    shards = max(1, min(4, os.cpu_count() or 1))
    workers = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "cuda_ptx.py"), str(path), "--cc",
                                 PTX_COMPUTE_CAPABILITY, "--shard", f"{k}/{shards}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for k in range(shards)]
    compiled, failures = 0, []
    for worker in workers:
        out, err = worker.communicate()
        assert worker.returncode in (0, 1) and out.strip(), out[-4000:] + err[-4000:]
        summary = json.loads(out.splitlines()[-1])
        compiled, failures = compiled + summary["compiled"], failures + summary["failures"]
    assert not failures, "\n".join(failures)
    assert compiled >= len(launches.launches), (compiled, len(launches.launches))
