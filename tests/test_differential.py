"""Differential test: random valid models (tests/random_models.py) on every compiled target against the reference
executor, outputs, losses and every gradient, f64 to 1e-8 and f32 to 1e-4 (relative to the value's scale; a
result computed from any f32 value is held to f32's tolerance).

A fixed sample runs by default; ``GRADC_TEST_SLOW=1`` runs ``GRADC_DIFF_MODELS`` (default 1000) models on the cpu
target and a tenth of them on the CUDA simulator, from seed ``GRADC_DIFF_START`` (default 0).
``GRADC_DIFF_SEED=S`` runs seed S alone. A failure names its
seed; ``python tests/random_models.py S`` prints that model, and ``GRADC_DIFF_SEED=S pytest
tests/test_differential.py`` runs it again.
"""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from random_models import random_model

import gradc
from gradc.runtime.execution.sampling import random_inputs

SLOW = os.environ.get("GRADC_TEST_SLOW") == "1"
TOLERANCE = {"float32": 1e-4, "float64": 1e-8}


def _seeds(quick: int, slow_share: int = 1) -> list[int]:
    if "GRADC_DIFF_SEED" in os.environ:
        return [int(os.environ["GRADC_DIFF_SEED"])]
    count = int(os.environ.get("GRADC_DIFF_MODELS", "1000")) // slow_share if SLOW else quick
    start = int(os.environ.get("GRADC_DIFF_START", "0"))
    return list(range(start, start + count))


def precisions(graph) -> dict[str, str]:
    """Result key -> the dtype whose tolerance applies: float32 when any value it is computed from is f32 (an f64
    loss of an f32 prediction is only as exact as the prediction), else float64."""
    table = {**graph.outputs, **graph.losses, **{f"grad/{n}": i for n, i in graph.grads.items()}}
    found = {}
    for key, node_id in table.items():
        upstream = nx.ancestors(graph.dag, node_id) | {node_id}
        found[key] = "float32" if any(graph.node(i).type.dtype == "f32" for i in upstream) else "float64"
    return found


def differences(reference: dict, actual: dict, precision: dict[str, str]) -> list[str]:
    """What differs between two results: keys, shapes, dtypes, or values beyond the tolerance of the result's
    precision."""
    if reference.keys() != actual.keys():
        return [f"results {sorted(actual)} instead of {sorted(reference)}"]
    found = []
    for key, want in reference.items():
        want, got = np.asarray(want), np.asarray(actual[key])
        if got.shape != want.shape or got.dtype != want.dtype:
            found.append(f"{key}: {got.dtype}{list(got.shape)} instead of {want.dtype}{list(want.shape)}")
            continue
        if not want.size:
            continue
        if not np.issubdtype(want.dtype, np.floating):
            if not np.array_equal(want, got):
                found.append(f"{key}: integers differ")
            continue
        if not np.all(np.isfinite(want)):
            if not np.array_equal(np.isfinite(want), np.isfinite(got)):
                found.append(f"{key}: non-finite values differ")
            continue
        scale = max(float(np.max(np.abs(want))), 1.0)
        error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        tolerance = TOLERANCE[precision.get(key, want.dtype.name)]
        if not error <= tolerance * scale:
            found.append(f"{key}: max error {error:.3e} against scale {scale:.3e} ({want.dtype}, tolerance "
                         f"{tolerance:g})")
    return found


def compare_seed(seed: int, target: str, folder: Path, batches: tuple[int, ...]) -> list[str]:
    """Run one random model on ``target`` and the reference; the differences found, each naming the seed."""
    path = folder / f"random_{seed}.model"
    path.write_text(random_model(seed))
    spec = gradc.load(path)
    reference = gradc.compile(spec, target="reference", seed=seed)
    compiled = gradc.compile(spec, target=target, seed=seed)
    precision = precisions(reference.graph)
    problems = []
    for batch in batches:
        inputs = random_inputs(reference.graph, batch, np.random.default_rng(seed * 31 + batch))
        for grad in (True, False):
            found = differences(reference.run(inputs, grad=grad), compiled.run(inputs, grad=grad), precision)
            problems += [f"seed {seed} ({target}, batch {batch}, grad={grad}): {d}" for d in found]
    return problems


def _run(seeds: list[int], target: str, folder: Path, batches: tuple[int, ...]) -> None:
    problems = []
    for seed in seeds:
        try:
            problems += compare_seed(seed, target, folder, batches)
        except Exception as exc:  # a crash is a failure of that seed, reported with the others
            problems.append(f"seed {seed} ({target}): {type(exc).__name__}: {str(exc)[:300]}")
    reproduce = "reproduce with: python tests/random_models.py SEED; GRADC_DIFF_SEED=SEED pytest " \
                "tests/test_differential.py"
    assert not problems, f"{len(problems)} difference(s) in {len(seeds)} models; {reproduce}\n" + "\n".join(problems)


def test_every_generated_model_is_valid(tmp_path):
    """The generator writes models the language accepts (a cheap check over many seeds)."""
    for seed in range(200 if not SLOW else 2000):
        path = tmp_path / "m.model"
        path.write_text(random_model(seed))
        try:
            gradc.load(path)
        except gradc.ModelError as exc:
            pytest.fail(f"seed {seed}: the generator wrote an invalid model: {exc}\n{random_model(seed)}")


def test_generator_covers_the_language():
    """Over the fixed sample, the models use every public op, every layer and every loss."""
    from gradc.compiler.frontend import callable_names

    text = "".join(random_model(seed) for seed in range(300))
    unused = [name for name in callable_names() if f"{name}(" not in text and f"-> {name}" not in text]
    assert not unused, f"the generator never writes {unused}"


@pytest.mark.slow
def test_cpu_matches_reference_on_random_models(tmp_path):
    _run(_seeds(16), "cpu", tmp_path, (1, 3))


@pytest.mark.slow
@pytest.mark.cuda
def test_cuda_simulator_matches_reference_on_random_models(tmp_path):
    _run(_seeds(4, slow_share=10), "cuda", tmp_path, (2,))
