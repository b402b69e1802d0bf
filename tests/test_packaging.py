"""Every package folder of the three stages and of gradc/ is listed in pyproject, so a non-editable
install ships it."""

from __future__ import annotations

import tomllib
from conftest import ROOT

STAGES = {"gradc.dsl": "dsl", "gradc.compiler": "compiler", "gradc.runtime": "runtime", "gradc": "gradc"}


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in STAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert config["package-dir"] == {"gradc": "gradc", **{p: f for p, f in STAGES.items() if p != "gradc"}}


def test_every_data_file_the_stages_read_is_packaged():
    """The grammar and the standard block library are read at run time: a wheel must carry them."""
    from fnmatch import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["gradc.dsl"]
    needed = [p.relative_to(ROOT / "dsl").as_posix() for p in (ROOT / "dsl").rglob("*")
              if p.is_file() and p.suffix in (".lark", ".model")]
    assert "stdlib/std.model" in needed
    missing = [f for f in needed if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert not missing, f"not in package-data: {missing}"
