"""Reading and writing arrays and text: every write goes to a temporary file that is then renamed over
the target, so nothing is ever left half-written; .npz files load with ``allow_pickle=False``.

Files are created with the mode the user's umask gives (a file that is replaced keeps its mode), as ``open``
would, not the 0600 of ``mkstemp``. A write that is killed leaves its hidden temporary file behind; the next
write into the same folder removes such leftovers (see :func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import stat
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gradc.dsl.diagnostics import DataError

# ``.<target name>.<pid>-<8 hex>.tmp``; before the pid was in the name, ``.<target name>.<8 of [a-z0-9_]>.tmp``
# (tempfile.mkstemp's names).
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?:(?P<pid>\d+)-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp$")
_TARGET_NAME_IN_TEMPORARY = 200  # characters of the target's name kept in the temporary's (names max 255)
STALE_AFTER_S = 3600.0  # a temporary of unknown origin this old is left over, not being written


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    A target that exists and is not a regular file (``/dev/null``, a FIFO, a terminal) is written
    directly: renaming over it would replace the device.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        with open(path, "wb") as handle:
            handle.write(data)
        return
    if path.parent and not path.parent.exists():
        raise DataError(f"cannot write {path}: directory {path.parent} does not exist")
    remove_stale_temporaries(path.parent)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new hidden file beside ``path``, as ``open`` would (mode 0666 less the umask), or with the
    mode of the file it will replace."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    stem = path.name[:_TARGET_NAME_IN_TEMPORARY]
    while True:
        tmp = path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that interrupted writes left in ``folder``: this user's, named as
    :func:`atomic_write_bytes` names them, of a process that no longer runs (or, for older names without
    a process id, beside their target and more than an hour old). Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    names = {entry.name for entry in entries}
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            continue
        pid = match.group("pid")
        if pid is not None:
            stale = not _process_is_running(int(pid))
        else:
            stale = match.group("target") in names and now - info.st_mtime > STALE_AFTER_S
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def _process_is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if not 0 < pid < 2**31:  # not a process id (0 and -1 would signal groups)
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it does, and is another user's
        return True
    except OSError:
        return False
    return True


def file_stem(name: str, limit: int = 100) -> str:
    """``name`` made fit to begin a file name: kept whole when short, else cut, with a hash of the whole name
    appended so that two long names stay apart. File names are at most 255 bytes."""
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    cut = name.encode("utf-8")[:limit - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{cut}-{digest}"


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: str | Path, what: str = "arrays") -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {what} file {path} as .npz: {exc}") from None
