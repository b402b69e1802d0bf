"""Files gradc writes: whole (temporary file, then rename), with the user's umask, and no temporary files left
behind by a write that was killed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from gradc.runtime.files import atomic_write_bytes, save_npz
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.runs import RunDirectory

MODEL = ROOT / "models" / "polynomial.model"


@pytest.fixture
def umask():
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.txt", b"text")
    save_npz(tmp_path / "b.npz", {"x": np.zeros(3)})
    run = RunDirectory.create("m", out=tmp_path / "run")
    run.write_config({"epochs": 1})
    run.write_metrics([{"epoch": 1, "train_loss": 1.0}])
    run.write_curves([{"epoch": 1, "train_loss": 1.0}], "m")
    for path in (tmp_path / "a.txt", tmp_path / "b.npz", run.path / "config.json", run.path / "metrics.jsonl",
                 run.path / "curves.png"):
        assert _mode(path) == mode, path
    assert _mode(run.path) == 0o777 & ~mask


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_checkpoint_follows_the_umask(tmp_path, umask):
    Checkpoint({"w": np.ones(3, np.float32)}, {"spec_hash": "0"}).save(tmp_path / "best.npz")
    assert _mode(tmp_path / "best.npz") == 0o644


def test_cli_outputs_follow_the_umask(cli, tmp_path, umask):
    assert cli("graph", MODEL, "--format", "svg", "-o", tmp_path / "g.svg").code == 0
    assert cli("run", MODEL, "-i", "x=1", "-i", "y=2", "-o", tmp_path / "r.npz").code == 0
    assert cli("compile", MODEL, "--emit", tmp_path / "src").code == 0
    for path in (tmp_path / "g.svg", tmp_path / "r.npz", tmp_path / "src" / "polynomial_cpu.py"):
        assert _mode(path) == 0o644, path


# ------------------------------------------------------------------ interrupted writes (item 24)

_KILLED_WRITE = """
import os, sys
from gradc.runtime import files
os.replace = lambda *args: os._exit(9)  # killed between writing the temporary file and renaming it
files.atomic_write_bytes(sys.argv[1], b"all of it")
"""


def _killed_write(target) -> None:
    subprocess.run([sys.executable, "-c", _KILLED_WRITE, str(target)], check=False)


def test_temporary_left_by_a_killed_write_is_removed_by_the_next_write(tmp_path):
    _killed_write(tmp_path / "last.npz")
    (left,) = (p.name for p in tmp_path.iterdir())
    assert left.startswith(".last.npz.") and left.endswith(".tmp"), left
    save_npz(tmp_path / "best.npz", {"x": np.zeros(2)})  # any write into the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]


def test_only_stale_temporaries_of_ours_are_removed(tmp_path):
    (tmp_path / "best.npz").write_bytes(b"")
    alive = tmp_path / f".last.npz.{os.getppid()}-0123abcd.tmp"  # a write in progress in a running process
    mine = tmp_path / f".last.npz.{os.getpid()}-0123abcd.tmp"
    fresh_old_style = tmp_path / ".best.npz.k3j2h1g0.tmp"  # mkstemp's name, from an older gradc: too young
    old_style = tmp_path / ".best.npz.a1b2c3d4.tmp"
    orphan_old_style = tmp_path / ".gone.npz.a1b2c3d4.tmp"  # its target does not exist: not surely ours
    user_files = [tmp_path / ".notes.tmp", tmp_path / "draft.tmp", tmp_path / ".x.npz.12-zzzz.tmp"]
    for path in (alive, mine, fresh_old_style, old_style, orphan_old_style, *user_files):
        path.write_bytes(b"")
    hours_ago = time.time() - 3 * 3600
    for path in (old_style, orphan_old_style):
        os.utime(path, (hours_ago, hours_ago))
    from gradc.runtime.files import remove_stale_temporaries

    removed = remove_stale_temporaries(tmp_path)
    assert removed == [old_style]
    for path in (alive, mine, fresh_old_style, orphan_old_style, *user_files):
        assert path.exists(), path


def test_run_folder_of_a_killed_training_is_cleaned_on_resume(tmp_path):
    run = RunDirectory.create("m", out=tmp_path / "run")
    _killed_write(run.best)
    run.write_metrics([{"epoch": 1}])
    assert not list(run.path.glob(".*.tmp"))


# ------------------------------------------------------------------ long names (item 7)


def test_long_names_are_shortened_to_fit_a_file_name():
    from gradc.runtime.files import file_stem

    long_a, long_b = "m" * 300, "m" * 299 + "n"
    assert file_stem("mlp") == "mlp"
    assert len(file_stem(long_a)) <= 100
    assert file_stem(long_a) != file_stem(long_b)
    assert file_stem(long_a).startswith("m" * 80)


def test_run_folder_of_a_model_with_a_300_character_name(tmp_path):
    run = RunDirectory.create("m" * 300, root=tmp_path)
    assert run.path.is_dir() and len(run.path.name) < 255
    run.write_config({})
    assert (run.path / "config.json").exists()
