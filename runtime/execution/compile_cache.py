"""The on-disk compile cache for generated programs.

An entry is a folder named by the hash of everything that decides the machine code: the fused graph
(as JSON), the target, and the versions of gradc, Numba and NumPy. It holds the generated source
(``program.py``) and, in ``__pycache__``, Numba's cache of each compiled entry point. A second process
that compiles the same model finds both and loads the machine code instead of compiling it.

The folder is ``$GRADC_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradc``, else ``~/.cache/gradc``; it and its entries
are private (0700, see :mod:`.cache_dirs`). An entry that cannot be read (a ``program.py`` that is a folder or
not UTF-8, an entry that is a file, Numba files that fail to load) is evicted and rebuilt, with a warning.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import linecache
import os
import shutil
import sys
import tempfile
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import numba
import numpy as np

from gradc.compiler import lower
from gradc.compiler.graph import Graph
from gradc.compiler.printers.json_format import to_json
from gradc.dsl.diagnostics import GradcWarning

from ..cache_dirs import CACHE_ENV, CacheRootIsNotAFolder, cache_root, private_directory
from ..files import atomic_write_text

__all__ = ["CACHE_ENV", "CacheWarning", "LoadedProgram", "cache_entries", "cache_root", "cache_size", "clear_cache",
           "compiled_entry_points", "evict", "load_source", "program_key"]

SOURCE_NAME = "program.py"
PYCACHE = "__pycache__"


class CacheWarning(GradcWarning):
    """The compile cache had to be repaired or bypassed; the program was compiled all the same."""


@dataclass
class CompileReport:
    target: str
    key: str
    directory: str
    cache_hit: bool
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kernels: int = 0


def program_key(graph: Graph, target: str) -> str:
    text = "\n".join([
        to_json(graph, "fused"), target, version("gradc"), numba.__version__, np.__version__,
        sys.version.split()[0], _kernel_library_digest(),
    ])
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _kernel_library_digest() -> str:
    """A digest of the targets' kernel libraries (``compiler/lower``): Numba's cache of a generated program holds
    the library functions it inlined, so a changed library must miss even where the program's text is the same."""
    folder = Path(lower.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class LoadedProgram:
    module: ModuleType
    key: str
    directory: Path
    cached_source: bool  # the entry's source was already on disk
    keep_alive: object = None  # the temporary folder of an uncached program


def load_source(source: str, key: str, use_cache: bool) -> LoadedProgram:
    """Write (or find) the generated source and import it as a module.

    With the cache on, an unusable entry is evicted and written afresh; a cache root that is not a folder
    is left alone and the program compiled without the cache, with a warning; a root that others could
    write raises :class:`~.cache_dirs.UnsafeCacheError`.
    """
    directory = _entry_directory(key) if use_cache else None
    if directory is None:
        keep = tempfile.TemporaryDirectory(prefix="gradc-")
        directory = Path(keep.name)
        path = directory / SOURCE_NAME
        atomic_write_text(path, source)
        cached = False
        name = f"gradc_program_{key[:32]}_{directory.name}"
    else:
        keep = None
        path = directory / SOURCE_NAME
        cached = _read_entry_source(directory) == source
        if not cached:
            atomic_write_text(path, source)
        # Numba's cache finds a function's globals through its module's name: register it under a stable one.
        name = f"gradc_program_{key[:32]}"
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
    # Numba's compile read the source through linecache (for its error locations): forget that copy too.
    linecache.cache.pop(getattr(module, "__file__", None) or "", None)


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
            _unload_library(getattr(result, "library", None))
        # The dispatcher's finalizer (a global registry) holds this dict, whose compile results hold the
        # module's globals again: empty it so that nothing global reaches the module.
        overloads.clear()


def _unload_library(library: object) -> None:
    """Take a compiled function's LLVM module out of Numba's JIT engine.

    The engine owns every module added to it until the process ends: its IR (several MiB for a program's
    kernels) outlives the function. Once no live program uses the function, the module leaves the engine and
    is freed with its library; the machine code it produced stays where it is (the engine keeps its memory),
    so nothing that still holds an address is left dangling."""
    module = getattr(library, "_final_module", None)
    engine = getattr(getattr(getattr(library, "_codegen", None), "_engine", None), "_ee", None)
    if module is None or engine is None or module not in getattr(engine, "_modules", ()):
        return
    engine.remove_module(module)


def evict(loaded: LoadedProgram, reason: str) -> None:
    """Drop a cache entry that failed to load (and its imported module), with a warning: it is rebuilt by the
    next :func:`load_source` of its key."""
    _warn_evicted(loaded.directory, reason)
    sys.modules.pop(loaded.module.__name__, None)
    _remove(loaded.directory)


def _entry_directory(key: str) -> Path | None:
    """The cache entry's folder for ``key``, made private; ``None`` when the cache root is not a folder."""
    try:
        root = private_directory(cache_root())
    except CacheRootIsNotAFolder as error:
        warnings.warn(f"{error.message}; compiling without the cache (set {CACHE_ENV} to a folder of your own)",
                      CacheWarning, stacklevel=3)
        return None
    directory = root / key[:32]
    if directory.exists() and not directory.is_dir():
        warnings.warn(f"the compile cache entry {directory} is not a folder; removed it", CacheWarning,
                      stacklevel=3)
        _remove(directory)
    return private_directory(directory)


def _read_entry_source(directory: Path) -> str | None:
    """The entry's source, or ``None`` when it has none; an unreadable one is evicted with a warning."""
    path = directory / SOURCE_NAME
    if not os.path.lexists(path):
        return None
    if not path.is_file():
        problem = f"{SOURCE_NAME} is not a file"
    else:
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problem = f"{SOURCE_NAME} is not UTF-8"
        except OSError as exc:
            problem = f"{SOURCE_NAME} cannot be read: {exc.strerror}"
    _warn_evicted(directory, problem)
    _remove(directory)
    private_directory(directory)
    return None


def _warn_evicted(directory: Path, reason: str) -> None:
    warnings.warn(f"the compile cache entry {directory} could not be used ({reason}); removed it and "
                  "compiling afresh", CacheWarning, stacklevel=2)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def compiled_entry_points(directory: Path) -> set[str]:
    """The entry points whose machine code Numba has cached in this entry."""
    found = set()
    for index in (directory / PYCACHE).glob(f"{Path(SOURCE_NAME).stem}.*.nbi"):
        found.add(index.name.split(".")[1].split("-")[0])
    return found


def cache_entries() -> list[Path]:
    root = cache_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / SOURCE_NAME).exists())


def cache_size(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())


def clear_cache() -> int:
    entries = cache_entries()
    for entry in entries:
        _remove(entry)
    return len(entries)
