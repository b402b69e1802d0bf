"""Property-based: whatever text a .model file holds, the CLI answers with exit 0 or a located error
(exit 1), never an escaped exception (an internal error is exit 70)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from conftest import MODELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradc.cli import main

TOKENS = [
    "model", "input", "param", "output", "loss", "train", "{", "}", "(", ")", "[", "]", ",", ":", "=", "->",
    "+", "-", "*", "/", "^", "@", "x", "y", "w", "N", "f32", "i64", "f64", "0", "1", "2.5", "-1", "1e-3",
    "relu", "dense", "softmax", "cross_entropy", "mean", "sum", "axis", "zeros", "he_normal", "true",
    "reshape", "shape", "dropout", "matmul", "bce", "sigmoid", "hinge", "max", "log", "\n", " ", "#", '"s"',
    "block", "return", "import", "std", "repeat", "residual_mlp", "b(x)", "a, b", ".", "...", "::", "::-1",
    "none", "concat", "pad", "stack", "tile", "squeeze", "x.dense1.weight", "x[0]", "[:, 1:]",
]
SOURCES = [m.read_text() for m in MODELS]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answer(source: str, *extra: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.model"
        path.write_text(source)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", str(path)])
            if code == 0 and extra:
                code = main([*extra, "-o", str(Path(tmp) / "graph.out"), str(path)])
        assert "internal error" not in err.getvalue(), (source, err.getvalue())
        assert "Traceback" not in err.getvalue(), (source, err.getvalue())
        return code


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    assert answer(text) in (0, 1)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_token_soup(tokens):
    assert answer("model fuzz\n" + " ".join(tokens)) in (0, 1)


@st.composite
def edited_model(draw):
    source = draw(st.sampled_from(SOURCES))
    lines = source.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete_chars", "insert_token", "drop_line", "swap_lines", "dup_line"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete_chars" and lines[i]:
            a = draw(st.integers(0, len(lines[i]) - 1))
            b = draw(st.integers(a, len(lines[i])))
            lines[i] = lines[i][:a] + lines[i][b:]
        elif kind == "insert_token":
            a = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:a] + draw(st.sampled_from(TOKENS)) + lines[i][a:]
        elif kind == "drop_line" and len(lines) > 1:
            del lines[i]
        elif kind == "swap_lines":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "dup_line":
            lines.insert(i, lines[i])
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@FUZZ
@given(edited_model())
def test_edited_models_check_and_compile(source):
    assert answer(source, "graph", "--stage", "optimized", "--format", "json") in (0, 1)
