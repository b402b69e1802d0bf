"""The caches gradc reads pickles from (Numba's index files, lark's parser tables) are private to the user,
and a damaged cache entry is rebuilt with a warning instead of failing every later command."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

MODEL = ROOT / "models" / "polynomial.model"


class _PlantedCode:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('planted code ran')",))


def _planted(marker: Path) -> bytes:
    # lark reads one line (a hash), then unpickles: the payload runs before any check
    return b"0\n" + pickle.dumps(_PlantedCode(marker))


def _gradc(*args: str, env: dict[str, str], umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradc", *args], capture_output=True, text=True, env=env,
                          check=False, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _env(tmp_path: Path, cache: Path | None = None) -> dict[str, str]:
    shared = tmp_path / "shared-tmp"
    shared.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(shared), "GRADC_CACHE_DIR": str(cache or tmp_path / "cache")}


# ------------------------------------------------------------------ lark's tables (item 1)


def test_lark_tables_are_never_read_from_the_shared_temp_folder(tmp_path):
    env = _env(tmp_path)
    shared = Path(env["TMPDIR"])
    # Make lark write its default cache file (a predictable name in the shared temp folder) for gradc's very
    # grammar and options, as another user could, then plant code in it.
    prime = ("import lark\n"
             "init = lark.Lark.__init__\n"
             "lark.Lark.__init__ = lambda self, grammar, **o: init(self, grammar, **{**o, 'cache': True})\n"
             "from gradc.dsl.parser import parse_source\n"
             "parse_source('model m\\n')\n")
    subprocess.run([sys.executable, "-c", prime], env=env, check=True, capture_output=True)
    planted = list(shared.glob(".lark*"))
    assert planted, "the test could not find lark's default cache file"
    marker = tmp_path / "planted-code-ran"
    for path in planted:
        path.write_bytes(_planted(marker))

    done = _gradc("check", str(MODEL), env=env)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "gradc unpickled a file from the shared temp folder"


def test_lark_tables_live_in_a_private_folder_whatever_the_umask(tmp_path):
    env = _env(tmp_path)
    done = _gradc("check", str(MODEL), env=env, umask=0)
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "cache"
    for folder in (cache, cache / "parser"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert list((cache / "parser").glob("lark-*.tables"))
    assert not list(Path(env["TMPDIR"]).iterdir()), "nothing is written to the shared temp folder"


def test_lark_tables_in_a_cache_folder_others_can_write_are_not_read(tmp_path):
    env = _env(tmp_path)
    assert _gradc("check", str(MODEL), env=env).returncode == 0
    cache = tmp_path / "cache"
    marker = tmp_path / "planted-code-ran"
    for tables in (cache / "parser").glob("lark-*.tables"):
        tables.write_bytes(_planted(marker))
    cache.chmod(0o777)
    done = _gradc("check", str(MODEL), env=env)
    assert done.returncode == 0, done.stderr  # checking a model needs no cache: the tables are built afresh
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file owned by another user")
def test_lark_tables_owned_by_another_user_are_not_read(tmp_path):
    env = _env(tmp_path)
    assert _gradc("check", str(MODEL), env=env).returncode == 0
    marker = tmp_path / "planted-code-ran"
    for tables in (tmp_path / "cache" / "parser").glob("lark-*.tables"):
        tables.write_bytes(_planted(marker))
        os.chown(tables, 65534, 65534)
    assert _gradc("check", str(MODEL), env=env).returncode == 0
    assert not marker.exists()


# ------------------------------------------------------------------ the compile cache (item 2)


def test_compile_cache_folders_are_private_under_umask_000(tmp_path):
    env = _env(tmp_path)
    done = _gradc("compile", str(MODEL), "-v", env=env, umask=0)
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "cache"
    entries = [p for p in cache.iterdir() if (p / "program.py").exists()]
    assert len(entries) == 1
    for folder in (cache, entries[0]):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_cache_root_others_could_only_read_is_made_private(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    done = _gradc("compile", str(MODEL), env=_env(tmp_path, cache))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_cache_root_writable_by_others_is_refused(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(mode)
    done = _gradc("compile", str(MODEL), env=_env(tmp_path, cache))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"gradc: error: refusing to use the cache folder {cache}: it is writable by "
                                  f"other users (mode {mode:04o})"), done.stderr
    assert "chmod 700" in done.stderr and "--no-cache" in done.stderr
    assert not [p for p in cache.iterdir() if p.name != "parser"], "nothing was cached there"
    assert _gradc("compile", str(MODEL), "--no-cache", env=_env(tmp_path, cache)).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder owned by another user")
def test_cache_root_owned_by_another_user_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chown(cache, 65534, 65534)
    done = _gradc("compile", str(MODEL), env=_env(tmp_path, cache))
    assert done.returncode == 1
    assert "it is owned by another user (uid 65534)" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def primed_cache(tmp_path_factory):
    """A cache in which the model's program and Numba's code for its entry points are stored."""
    base = tmp_path_factory.mktemp("primed")
    done = _gradc("compile", str(MODEL), env=_env(base))
    assert done.returncode == 0, done.stderr
    return base / "cache"


def _truncate(pattern: str):
    def damage(entry: Path) -> None:
        files = list((entry / "__pycache__").glob(pattern))
        assert files
        for path in files:
            path.write_bytes(path.read_bytes()[:10])
    return damage


def _source_is_a_folder(entry: Path) -> None:
    (entry / "program.py").unlink()
    (entry / "program.py").mkdir()


def _source_is_not_utf8(entry: Path) -> None:
    with open(entry / "program.py", "ab") as handle:
        handle.write(b"\xff\xfe# not UTF-8\n")


def _entry_is_a_file(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.write_text("not a cache entry")


DAMAGE = {
    "truncated .nbc": (_truncate("*.nbc"), "Numba's cached code for forward failed to load"),
    "truncated .nbi": (_truncate("*.nbi"), "Numba's cached code for forward failed to load"),
    "program.py is a folder": (_source_is_a_folder, "program.py is not a file"),
    "program.py is not UTF-8": (_source_is_not_utf8, "program.py is not UTF-8"),
    "entry is a file": (_entry_is_a_file, "is not a folder; removed it"),
}


@pytest.mark.parametrize("damage, warning", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_cache_entry_is_evicted_and_rebuilt(tmp_path, primed_cache, damage, warning):
    cache = tmp_path / "cache"
    shutil.copytree(primed_cache, cache)  # copy2 keeps the times Numba's index checks
    (entry,) = [p for p in cache.iterdir() if p.name != "parser"]
    damage(entry)
    env = _env(tmp_path, cache)
    first = _gradc("compile", str(MODEL), "-v", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("gradc: warning: "), first.stderr
    assert warning in first.stderr, first.stderr
    assert "(cache miss)" in first.stdout
    second = _gradc("compile", str(MODEL), env=env)  # repaired for good: no warning, served from the cache
    assert second.returncode == 0 and "warning" not in second.stderr, second.stderr
    assert "(cache hit)" in second.stdout, second.stdout


def test_cache_root_that_is_a_file_is_left_alone_and_bypassed(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("the user's file")
    env = _env(tmp_path, cache)
    done = _gradc("compile", str(MODEL), env=env)
    assert done.returncode == 0, done.stderr
    assert f"gradc: warning: cannot use {cache} as the cache folder: it is not a folder; compiling without " \
           "the cache" in done.stderr
    assert cache.read_text() == "the user's file"
    info = _gradc("cache", "info", env=env)
    assert info.returncode == 0 and "programs: 0" in info.stdout, info
    assert _gradc("run", str(MODEL), "-i", "x=1", "-i", "y=2", env=env).returncode == 0
