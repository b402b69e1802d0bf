"""The blocks a model file can use: its own and those of the files it imports.

``import "layers/common.model"`` reads a file relative to the importing one; ``import std`` reads gradc's
standard library (``dsl/stdlib/std.model``, written in the language itself). An imported file holds blocks and
imports only. Files are read as data, like any model file; an import cycle, a missing file or two blocks of
one name are located errors.
"""

from __future__ import annotations

from pathlib import Path

from . import ast
from .diagnostics import ModelError

LIBRARY = Path(__file__).with_name("stdlib")


def collect_blocks(module: ast.Module) -> dict[str, ast.BlockDef]:
    """Every block ``module`` defines or imports, by name."""
    blocks: dict[str, ast.BlockDef] = {}
    _collect(module, blocks, (_key(module.path),))
    return blocks


def _collect(module: ast.Module, blocks: dict[str, ast.BlockDef], chain: tuple[str, ...]) -> None:
    for stmt in module.statements:
        if isinstance(stmt, ast.BlockDef):
            _add(stmt, blocks)
        elif isinstance(stmt, ast.Import):
            path = _resolve(stmt, module.path)
            if _key(path) in chain:
                raise ModelError(f"import cycle: {' -> '.join(Path(c).name for c in (*chain, str(path)))}", stmt.loc)
            imported = _parse(path, stmt)
            for inner in imported.statements:
                if not isinstance(inner, ast.BlockDef | ast.Import):
                    raise ModelError(f"{path.name} is imported, so it may hold only blocks and imports",
                                     inner.loc)
            _collect(imported, blocks, (*chain, _key(path)))


def _add(block: ast.BlockDef, blocks: dict[str, ast.BlockDef]) -> None:
    first = blocks.get(block.name)
    if first is not None and first is not block:
        raise ModelError(f"block '{block.name}' is defined twice (first at {first.loc.path}:{first.loc.line})",
                         block.name_loc)
    blocks[block.name] = block


def _resolve(stmt: ast.Import, importer: str) -> Path:
    if not stmt.is_path:
        path = LIBRARY / f"{stmt.source}.model"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in LIBRARY.glob("*.model")))
            raise ModelError(f"no block library named '{stmt.source}' (there is: {known}); import a file with "
                             f'import "path/to/file.model"', stmt.loc)
        return path
    base = Path(importer).parent if importer and not importer.startswith("<") else Path.cwd()
    return base / stmt.source


def _parse(path: Path, stmt: ast.Import) -> ast.Module:
    from .parser import parse_file  # the parser imports nothing from here; this keeps it so

    if not path.is_file():
        raise ModelError(f"cannot import {stmt.source}: no such file ({path})", stmt.loc)
    return parse_file(path)


def _key(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)
