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
