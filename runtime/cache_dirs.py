"""gradc's per-user cache folder, and the checks that keep it private.

The compile cache holds Numba's index files and lark's parser tables, which are pickles: whoever can write
into the folder can run code in every gradc process that reads it. So every folder gradc caches in is
created with mode 0700, and one that already exists must be a folder owned by this user that no one else
may write; otherwise :func:`private_directory` refuses it with :class:`UnsafeCacheError`.

The folder is ``$GRADC_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradc``, else ``~/.cache/gradc``. This module
imports only the standard library, so the parser can use it without loading the compiler.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from gradc.dsl.diagnostics import GradcError

CACHE_ENV = "GRADC_CACHE_DIR"
PRIVATE_MODE = 0o700


class UnsafeCacheError(GradcError):
    """A cache folder that another user could write, or that is not a folder at all."""


class CacheRootIsNotAFolder(UnsafeCacheError):
    """The cache root names a file (or something else that is not a folder)."""


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradc"


def private_directory(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (whatever the umask), or check the folder that
    is there: a folder, owned by this user, writable by no one else (one that others may only read, as
    older gradc made them, is made 0700, so nothing inside it can be reached). Returns ``path``."""
    missing = []
    folder = path
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_MODE)  # the umask can only take bits away from 0700
        except FileExistsError:
            pass  # made by a concurrent process: checked below like any existing folder
        except OSError as exc:
            raise CacheRootIsNotAFolder(_not_a_folder(folder, exc.strerror.lower())) from None
    check_private(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        with contextlib.suppress(OSError):
            path.chmod(PRIVATE_MODE)
    return path


def check_private(path: Path) -> None:
    """Raise :class:`UnsafeCacheError` unless ``path`` is a folder of this user's that others cannot write."""
    try:
        info = path.stat()
    except OSError as exc:
        raise CacheRootIsNotAFolder(_not_a_folder(path, exc.strerror.lower())) from None
    if not stat.S_ISDIR(info.st_mode):
        raise CacheRootIsNotAFolder(_not_a_folder(path, "it is not a folder"))
    problem = None
    if info.st_uid != os.geteuid():
        problem = f"is owned by another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem:
        raise UnsafeCacheError(
            f"refusing to use the cache folder {path}: it {problem}, so anyone who can write there could "
            f"plant code that gradc would run. Make it yours and private (chmod 700 {path}), set {CACHE_ENV} "
            "to a folder of your own, or compile with --no-cache")


def is_own_file(path: Path) -> bool:
    """A regular file (not a link) owned by this user; ``False`` if it is missing. In a folder that
    :func:`private_directory` checked, its mode does not matter: no one else can reach it."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def _not_a_folder(path: Path, why: str) -> str:
    return f"cannot use {path} as the cache folder: {why}"
