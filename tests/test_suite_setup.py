"""The test suite itself: it compiles into a temporary cache of its own and has a quick subset (issue 12)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from conftest import SESSION_CACHE_DIR, USER_CACHE_DIR

from gradc import api
from gradc.runtime.execution import compile_cache


def test_tests_compile_into_a_temporary_cache_not_the_users(write_model):
    root = compile_cache.cache_root().resolve()
    assert root == Path(SESSION_CACHE_DIR).resolve()
    assert root.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert root != (Path.home() / ".cache" / "gradc").resolve()
    if USER_CACHE_DIR:
        assert root != Path(USER_CACHE_DIR).resolve()
    api.compile(write_model("model m\ninput x: f32[N, 2]\ny = x * 3.5 + 1\noutput y\n"), target="cpu")
    assert any(root.rglob("*.py")), "the compiled program went somewhere else"
