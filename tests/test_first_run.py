"""The first runs a new user makes (issue 12): the BLAS thread count, and the README's resume example."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from conftest import ROOT
from threadpoolctl import threadpool_info

from gradc.runtime.execution.threads import THREAD_VARIABLES


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_the_cli_runs_the_blas_on_one_thread(cli, monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert cli("check", ROOT / "models" / "tiny_regression.model").code == 0
    assert _blas_threads() <= {1}


@pytest.mark.slow
def test_the_readme_resume_example_trains_more_epochs(cli, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"^gradc train models/mlp_digits.model .*--out runs/\w+.*$", readme, re.MULTILINE)
    first, resumed = ([str(ROOT / a) if a.startswith("models/") else a for a in shlex.split(line.split("#")[0])[1:]]
                      for line in lines[:2])
    assert "--resume" in resumed
    monkeypatch.chdir(tmp_path)
    assert cli(*first).code == 0
    result = cli(*resumed)
    assert result.code == 0, result
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "runs" / "resumed" / "metrics.jsonl").open()
              if '"epoch"' in line]
    assert max(epochs) > 11, epochs  # the folder's history goes past the first run's 10 epochs
    assert "epoch  11/30" in result.out and "epoch   1/30" not in result.out  # it continued, not restarted
