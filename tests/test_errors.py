"""Every mistake in a .model file: ``path:line:col: error: message``, the source line, a caret, exit 1."""

from __future__ import annotations

import pytest
from conftest import ROOT

HEADER = "model m\ninput x: f32[N, 4]\ninput y: i64[N]\n"

# (source, line, col, fragment of the message)
CASES = [
    # syntax
    ("model m\ny = (x + 1\n", 2, 10, "unexpected end of file; expected ')'"),
    ("model m\ninput x: f32[N]\ny = x +\n", 3, 8, "expected an expression"),
    ("model m\ninput x: f32\ny = x $ 2\n", 3, 7, "unexpected character '$'"),
    ("model m\ninptu x: f32\n", 2, 1, "unknown statement 'inptu'; did you mean 'input'?"),
    ("model m\ninput x f32\n", 2, 9, "expected ':'"),
    ("model m\ninput x: f23\n", 2, 10, "unknown type 'f23'; did you mean 'f32'?"),
    ("model m\ninput x: f32[0]\n", 2, 14, "positive integer"),
    ("model m\ninput x: f32\ny = f(a=1, x)\n", 3, 12, "positional argument cannot follow"),
    # names and statements
    ("input x: f32\noutput y = x\n", 1, 1, "missing 'model NAME'"),
    (HEADER + "h = x1 * 2\n", 4, 5, "unknown name 'x1'; did you mean 'x'?"),
    (HEADER + "h = x\nh = x * 2\n", 5, 1, "'h' is defined twice (first at line 4)"),
    (HEADER + "a = b + 1\nb = a * 2\noutput a\n", 4, 1, "definitions form a cycle: a -> b -> a"),
    (HEADER + "output z\n", 4, 8, "output 'z' is not defined"),
    (HEADER + "h = relu\n", 4, 5, "'relu' is an op; call it"),
    # ops and arguments
    (HEADER + "h = rleu(x)\n", 4, 5, "unknown op 'rleu'; did you mean 'relu'?"),
    (HEADER + "h = leaky_relu(x, alpah=0.2)\n", 4, 19, "unknown argument 'alpah' for leaky_relu; did you mean"),
    (HEADER + "h = leaky_relu(x, alpha=true)\n", 4, 25, "argument 'alpha' of leaky_relu must be a number"),
    (HEADER + "h = gelu(x, approximate=2)\n", 4, 25, "must be true or false"),
    (HEADER + "h = x -> dense(8, init=he_normla)\n", 4, 24, "did you mean 'he_normal'?"),
    (HEADER + "h = x -> dense()\n", 4, 10, "dense needs argument 'units'"),
    (HEADER + "h = mse(x)\n", 4, 5, "mse takes 2 operand(s)"),
    (HEADER + "h = reshape(x, shape=[M, 4])\n", 4, 23, "unknown dimension 'M'"),
    (HEADER + "h = relu(x, 3)\n", 4, 13, "relu takes at most 0 argument(s)"),
    # shapes and types
    ("model m\ninput a: f32[N, 3]\ninput b: f32[4]\nh = a + b\n", 4, 7,
     "cannot broadcast f32[N,3] and f32[4]: dimension 3 does not match 4 (in the definition of 'h')"),
    ("model m\ninput a: f32[N, 64]\nparam w: f32[30, 8] = zeros\nh = a @ w\n", 4, 7,
     "matmul: inner dimensions do not match: f32[N,64] @ f32[30,8] (64 vs 30)"),
    (HEADER + "loss L = cross_entropy(x, x)\n", 4, 10, "expects integer class labels"),
    ("model m\ninput s: f32[N, 4]\ninput y: i64[N, 2]\nloss L = cross_entropy(s, y)\n", 4, 10,
     "labels i64[N,2] do not match scores f32[N,4]"),
    ("model m\ninput p: f32[N, 1]\ninput t: f32[N]\nloss L = mse(p, t)\n", 4, 10,
     "prediction f32[N,1] and target f32[N] must have the same shape"),
    (HEADER + "loss L = x * 2\n", 4, 6, "loss 'L' must be a scalar, got f32[N,4]"),
    (HEADER + "h = exp(y)\n", 4, 5, "exp expects a floating-point tensor, got i64[N]"),
    (HEADER + "h = reshape(x, shape=[-1])\n", 4, 5, "would merge the batch dimension"),
    (HEADER + "h = gt(x, 0) - lt(x, 1)\n", 4, 14, "arithmetic needs a number, got bool[N,4] and bool[N,4]"),
    (HEADER + "h = -gt(x, 0)\n", 4, 5, "expected numbers, got bool[N,4]"),
    (HEADER + "h = where(x, x, 0)\n", 4, 5, "where expects a bool condition"),
    (HEADER + "h = exp(gt(x, 0))\n", 4, 5, "exp expects a floating-point tensor, got bool[N,4]"),
    (HEADER + "h = sum(x, axis=2)\n", 4, 5, "axis 2 is out of range"),
    ("model m\ninput x: f32[N]\ninput z: f32[M]\n", 3, 14, "only an input that starts with the batch dimension 'N'"),
    ("model m\ninput x: f32[N]\ninput z: f32[3, T]\n", 3, 17, "'T' would be a symbolic length"),
    ("model m\nparam w: f32[N] = zeros\n", 2, 14, "must have a fixed shape"),
    ("model m\nparam w: f32[3]\n", 2, 7, "needs an initializer"),
    ("model m\nparam w: f32[3] = gaussian\n", 2, 19, "unknown initializer 'gaussian'"),
    ("model m\nparam w: f32[3] = normal(sd=1)\n", 2, 26, "unknown argument 'sd' for normal; did you mean 'std'?"),
    # indexing, pad, concat
    (HEADER + "h = x[:, 9]\n", 4, 10, "index 9 is out of range for axis 1 of f32[N,4] (size 4)"),
    (HEADER + "h = x[0]\n", 4, 7, "cannot index the batch dimension N of f32[N,4]"),
    (HEADER + "h = x[2:]\n", 4, 7, "cannot slice the batch dimension N"),
    (HEADER + "h = x[:, 1:1]\n", 4, 10, "the slice selects no elements of axis 1"),
    (HEADER + "h = x[:, ::0]\n", 4, 12, "a slice step cannot be 0"),
    (HEADER + "h = x[:, 1.5]\n", 4, 10, "an index must be an integer literal"),
    (HEADER + "h = x[:, 0:k]\n", 4, 12, "a slice bound must be an integer literal"),
    (HEADER + "h = x[..., ..., 1]\n", 4, 12, "only one '...'"),
    (HEADER + "h = x[1, 2, 3]\n", 4, 6, "too many indices: 3 for f32[N,4], which has 2 axes"),
    (HEADER + "h = 3[0]\n", 4, 6, "a number cannot be indexed"),
    (HEADER + "h = concat(x, x, axis=0)\n", 4, 5, "cannot join along the batch dimension N"),
    (HEADER + "h = concat(x, x[:, 0], axis=1)\n", 4, 5, "concat: f32[N,4] and f32[N] differ in rank"),
    (HEADER + "h = concat(axis=1)\n", 4, 5, "concat takes one or more tensors"),
    (HEADER + "h = pad(x, 1, 1, axis=0)\n", 4, 5, "cannot pad the batch dimension N"),
    (HEADER + "h = pad(x, -1)\n", 4, 5, "before and after must be 0 or more"),
    (HEADER + "h = pad(x, 4, 0, mode=reflect)\n", 4, 5, "a reflection adds at most 3 elements on each side"),
    (HEADER + "a, b = split(x, 3)\n", 4, 8, "do not make 3 equal parts"),
    (HEADER + "a, b = split(x, [1, 2])\n", 4, 8, "must be positive and add up to 4"),
    (HEADER + "a = split(x, 2)\n", 4, 5, "this value has 2 results; name them"),
    (HEADER + "a, b, c = split(x, 2)\n", 4, 1, "3 names, but the value has 2 result(s)"),
    (HEADER + "h = cumsum(x, axis=0)\n", 4, 5, "cumsum: cannot run along the batch dimension N"),
    (HEADER + "h = gather(x, x)\n", 4, 5, "gather expects integer indices"),
    (HEADER + "h = x -> embedding(10, 4)\n", 4, 10, "embedding looks up integer ids, got f32[N,4]"),
    (HEADER + "h = one_hot(x, 3)\n", 4, 5, "one_hot expects integer labels"),
    (HEADER + "h = argmax(x, axis=0)\n", 4, 5, "cannot search along the batch dimension N"),
    # parameters by name
    (HEADER + "c = x -> dense(3)\nh = c.dense2.weight\n", 5, 5,
     "unknown parameter 'c.dense2.weight'; did you mean 'c.dense1.weight'?"),
    (HEADER + "h = x.weight\n", 4, 5, "unknown parameter 'x.weight': 'x' has no layer parameters"),
    (HEADER + "h = cc.dense1.weight\n", 4, 5, "unknown name 'cc'"),
    # train block
    (HEADER + "train {\n  epoch = 3\n}\n", 5, 3, "unknown train setting 'epoch'; did you mean 'epochs'?"),
    (HEADER + "train {\n  optimizer = adamw(lr=0.1)\n}\n", 5, 15, "unknown optimizer 'adamw'; did you mean 'adam'?"),
    (HEADER + "train {\n  optimizer = adam(lr=0.1, beta=0.9)\n}\n", 5, 28, "unknown argument 'beta' for optimizer"),
    (HEADER + "train {\n  batch = 0\n}\n", 5, 11, "batch must be a positive integer"),
    (HEADER + "train {\n  epochs = 2.5\n}\n", 5, 12, "epochs must be a positive integer"),
    (HEADER + "train {\n  batch = 8\n  batch = 16\n}\n", 6, 3, "given twice"),
    (HEADER + "train {\n  schedule = stepp(every=2)\n}\n", 5, 14, "unknown schedule 'stepp'; did you mean 'step'?"),
]


@pytest.mark.parametrize("source, line, col, fragment", CASES, ids=[c[3][:40] for c in CASES])
def test_model_error_is_located(cli, write_model, source, line, col, fragment):
    path = write_model(source)
    result = cli("check", path)
    assert result.code == 1, result
    first = result.err.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: error: "), result.err
    assert fragment in first, result.err
    assert "Traceback" not in result.err
    # the source line and a caret under the column
    lines = result.err.splitlines()
    assert lines[1] == "    " + source.splitlines()[line - 1].expandtabs(1)
    assert lines[2].index("^") == 4 + col - 1


def test_missing_file(cli, tmp_path):
    result = cli("check", tmp_path / "nope.model")
    assert result.code == 1
    assert "no such model file" in result.err


def test_warning_for_unused_definition(cli, write_model):
    path = write_model(HEADER + "h = x * 2\nloss L = cross_entropy(x, y)\n")
    result = cli("check", path)
    assert result.code == 0
    assert f"{path}:4:1: warning: 'h' is defined but never used" in result.err


def test_warning_for_softmax_into_cross_entropy(cli, write_model):
    path = write_model(HEADER + "p = softmax(x)\nloss L = cross_entropy(p, y)\n")
    result = cli("check", path)
    assert result.code == 0
    assert "cross_entropy takes logits, but its input is a softmax" in result.err


def test_unclosed_bracket_is_named(cli, write_model):
    path = write_model("model m\ny = f(x,\n")
    result = cli("check", path)
    assert result.code == 1
    assert "note: '(' opened at 2:6 is not closed" in result.err


# ------------------------------------------------------------------ control characters (issue 12, item 3)

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"  # set the title, ring, clear the screen, C1 CSI, bidi override


def _has_control(text: str) -> bool:
    return any(ch in text for ch in "\x1b\x07\x9b\u202e")


def test_control_characters_in_the_source_echo_are_escaped(cli, write_model):
    source = f'model m\ninput x: f32\noutput y = x $ 1 # {ESCAPES}\n'
    result = cli("check", write_model(source))
    assert result.code == 1
    assert not _has_control(result.err), repr(result.err)
    lines = result.err.splitlines()
    assert lines[1] == "    output y = x $ 1 # \\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202e"
    assert lines[2].index("^") == 4 + 14 - 1


def test_caret_stays_under_the_error_after_escaped_characters(cli, write_model):
    source = 'model m\ninput x: f32\noutput y = "\x1b\x07" $ 1\n'
    result = cli("check", write_model(source))
    assert result.code == 1
    _, echo, caret = result.err.splitlines()[:3]
    assert not _has_control(result.err)
    assert echo[caret.index("^")] == "$", result.err


def test_control_characters_from_data_and_strings_are_escaped(cli, write_model):
    path = write_model("model m\ninput x: f32[N, 4]\ninput y: i64[N]\nparam w: f32[4, 3] = zeros\n"
                       f'loss L = cross_entropy(x @ w, y)\ntrain {{\n  data = "{ESCAPES}data.csv"\n}}\n')
    for command in (("train", path), ("check", path), ("train", path, "--data", f"{ESCAPES}.npz")):
        result = cli(*command)
        assert not _has_control(result.out + result.err), (command, result)
    assert "\\x1b]0;owned\\x07" in cli("train", path).err


def test_escape_controls_keeps_ordinary_text():
    from gradc.dsl.diagnostics import escape_controls

    assert escape_controls("naïve – ok\t€") == "naïve – ok\t€"
    assert escape_controls("a\x1bb\rc\x7f") == "a\\x1bb\\x0dc\\x7f"
    assert escape_controls("line\nnext\r", keep="\n\r") == "line\nnext\r"


# ------------------------------------------------------------------ files that are not UTF-8 (item 26)


@pytest.mark.parametrize("data, line, col, shown", [
    (b"model m\ninput x: f32\n# caf\xe9\noutput y = x\n", 3, 6, "byte 0xe9"),
    (b"model m\ninput x: f32 # \xe2\x82\xac \xe2\x82\n", 2, 18, "bytes 0xe2 0x82"),
    (b"\xffmodel m\n", 1, 1, "byte 0xff"),
])
def test_file_that_is_not_utf8_is_a_located_error(cli, tmp_path, data, line, col, shown):
    path = tmp_path / "latin1.model"
    path.write_bytes(data)
    result = cli("check", path)
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert lines[0].startswith(f"{path}:{line}:{col}: error: the file is not UTF-8 text: {shown} cannot be "
                               "decoded"), result.err
    echoed = data.splitlines()[line - 1].decode("utf-8", errors="backslashreplace")
    assert lines[1] == "    " + echoed
    assert lines[2].index("^") == 4 + col - 1
    assert "Traceback" not in result.err


def test_utf16_file_is_named_and_a_utf8_byte_order_mark_is_accepted(cli, tmp_path):
    path = tmp_path / "utf16.model"
    path.write_bytes("model m\ninput x: f32\n".encode("utf-16"))
    result = cli("check", path)
    assert result.code == 1
    assert result.err.startswith(f"{path}:1:1: error: the file is UTF-16 text, not UTF-8"), result.err
    path.write_bytes(b"\xef\xbb\xbf" + (ROOT / "models" / "polynomial.model").read_bytes())
    assert cli("check", path).code == 0
    path.write_bytes(b"\xef\xbb\xbfmodel m $\n")
    lines = cli("check", path).err.splitlines()
    assert lines[0].startswith(f"{path}:1:9: error: unexpected character '$'") and lines[1] == "    model m $"
    assert lines[2].index("^") == 4 + 8


def test_a_stream_kept_by_a_library_writes_through_after_the_command(capsys):
    """Inside a command, control characters are escaped; a library that kept the stream (colorama writes its
    colour reset at exit) writes through unchanged once the command is over, never a visible '\\x1b[0m'."""
    import sys

    from gradc.cli import _terminal_safe_output

    with _terminal_safe_output():
        kept = sys.stdout
        print("\x1b[31m")
    kept.write("\x1b[0m")
    assert capsys.readouterr().out == "\\x1b[31m\n\x1b[0m"
