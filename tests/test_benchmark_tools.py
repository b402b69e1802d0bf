"""The measuring tools in benchmarks/ that developers run by hand still run."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_kernel_times_reports_every_timed_kernel_of_a_training_step(write_model):
    path = write_model("model tiny\ninput x: f32[N, 3]\ninput y: i64[N]\n"
                       "logits = x -> dense(8) -> relu -> dense(2)\nloss L = cross_entropy(logits, y)\n")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_times.py"), str(path),
                             "--batch", "4", "--repeat", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}: train_sgd at batch 4, median of 2:")
    rows = [line for line in lines[2:] if line.startswith("| ") and not line.startswith("| ms")]
    assert any("gemm: matmul" in row for row in rows) and any("parameter update" in row for row in rows)
    assert all(float(row.split("|")[1]) >= 0 for row in rows)
