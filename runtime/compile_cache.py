"""The on-disk compile cache for generated programs.

An entry is a folder named by the hash of everything that decides the machine code: the fused graph
(as JSON), the target, and the versions of gradc, Numba and NumPy. It holds the generated source
(``program.py``) and, in ``__pycache__``, Numba's cache of each compiled entry point. A second process
that compiles the same model finds both and loads the machine code instead of compiling it.

The folder is ``$GRADC_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradc``, else ``~/.cache/gradc``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numba
import numpy as np

import gradc
from gradc.compiler.graph import Graph
from gradc.compiler.printers.json_format import to_json

from .files import atomic_write_text

CACHE_ENV = "GRADC_CACHE_DIR"
SOURCE_NAME = "program.py"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradc"


def program_key(graph: Graph, target: str) -> str:
    text = "\n".join([
        to_json(graph, "fused"), target, gradc.__version__, numba.__version__, np.__version__,
        sys.version.split()[0],
    ])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class LoadedProgram:
    module: ModuleType
    key: str
    directory: Path
    cached_source: bool  # the entry's source was already on disk
    keep_alive: object = None  # the temporary folder of an uncached program


def load_source(source: str, key: str, use_cache: bool) -> LoadedProgram:
    """Write (or find) the generated source and import it as a module."""
    if use_cache:
        directory = cache_root() / key[:32]
        path = directory / SOURCE_NAME
        cached = path.exists() and path.read_text() == source
        if not cached:
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, source)
        keep = None
    else:
        keep = tempfile.TemporaryDirectory(prefix="gradc-")
        directory = Path(keep.name)
        path = directory / SOURCE_NAME
        path.write_text(source)
        cached = False
    # Numba's cache finds a function's globals through its module's name: register it under a stable one.
    name = f"gradc_program_{key[:32]}" + ("" if use_cache else f"_{directory.name}")
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    loaded = LoadedProgram(module, key, directory, cached, keep)
    _module_users[name] += 1
    weakref.finalize(loaded, _release_module, name, module)
    return loaded


# How many live programs use each generated module. The module must stay in sys.modules while one does
# (Numba finds a function's globals through its module's name when it compiles or loads from its cache);
# once none does, it leaves sys.modules, so a process that compiles program after program (a sweep, a test
# suite, a notebook) frees each one's module, Numba dispatchers and machine code when it is dropped.
_module_users: Counter[str] = Counter()


def _release_module(name: str, module: ModuleType) -> None:
    _module_users[name] -= 1
    if _module_users[name] > 0:
        return
    del _module_users[name]
    if sys.modules.get(name) is module:
        del sys.modules[name]
    _forget_compiled_functions(module)


def _forget_compiled_functions(module: ModuleType) -> None:
    """Take a generated module's functions out of Numba's target context.

    Numba registers each compiled function there (a global table) under its entry point, whose environment
    holds the module's globals, which hold every dispatcher of the module; and each dispatcher's finalizer
    (kept in weakref's global registry) holds its compile results, which hold the same globals. Neither
    chain ends while the process runs, so the module, its dispatchers and their machine code never went.
    Called once no live program uses the module."""
    for value in list(vars(module).values()):
        overloads = getattr(value, "overloads", None)
        context = getattr(value, "targetctx", None)
        if overloads is None or context is None or not hasattr(context, "remove_user_function"):
            continue
        if getattr(getattr(value, "py_func", None), "__module__", None) != module.__name__:
            continue  # an imported helper of the kernel library, shared with every other program
        for result in list(overloads.values()):
            try:
                context.remove_user_function(result.entry_point)
            except (KeyError, AttributeError):
                pass
        # The dispatcher's finalizer (a global registry) holds this dict, whose compile results hold the
        # module's globals again: empty it so that nothing global reaches the module.
        overloads.clear()


def compiled_entry_points(directory: Path) -> set[str]:
    """The entry points whose machine code Numba has cached in this entry."""
    found = set()
    for index in (directory / "__pycache__").glob(f"{Path(SOURCE_NAME).stem}.*.nbi"):
        found.add(index.name.split(".")[1].split("-")[0])
    return found


def cache_entries() -> list[Path]:
    root = cache_root()
    return sorted(p for p in root.iterdir() if (p / SOURCE_NAME).exists()) if root.exists() else []


def cache_size(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())


def clear_cache() -> int:
    entries = cache_entries()
    for entry in entries:
        shutil.rmtree(entry, ignore_errors=True)
    return len(entries)
