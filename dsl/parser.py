"""Parse .model text into the AST with lark (LALR), turning every syntax error into a located diagnostic."""

from __future__ import annotations

import codecs
import functools
import hashlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import lark
from lark import Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import ModelError, SourceLocation, did_you_mean

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

STATEMENT_KEYWORDS = ("model", "input", "param", "output", "loss", "train", "block", "import", "return")
DTYPES = ("f32", "f64", "i32", "i64")

_OPENERS = {"LPAR": ")", "LSQB": "]"}
_CLOSERS = {"RPAR", "RSQB"}

_TERMINAL_WORDS = {
    "_NL": "end of line",
    "$END": "end of file",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
}


class _NewlinePostLexer:
    """Drop newlines inside ( ) and [ ], and before a line that continues a pipeline with '->'.

    Lark calls :meth:`process` with the token stream; we hold each newline until the next token
    shows whether it ends a statement.
    """

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.open_brackets: list[Token] = []

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        self.open_brackets = []
        pending_newline: Token | None = None
        for token in stream:
            if token.type == "_NL":
                if not self.open_brackets:
                    pending_newline = token
                continue
            if pending_newline is not None and token.type != "ARROW":
                yield pending_newline
            pending_newline = None
            if token.type in _OPENERS:
                self.open_brackets.append(token)
            elif token.type in _CLOSERS and self.open_brackets:
                self.open_brackets.pop()
            yield token
        if pending_newline is not None:
            yield pending_newline


@functools.lru_cache(maxsize=1)
def _lark_parser() -> tuple[lark.Lark, _NewlinePostLexer]:
    postlex = _NewlinePostLexer()
    grammar = GRAMMAR_PATH.read_text()
    parser = lark.Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        postlex=postlex,
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_table_cache(grammar),  # the analysed LALR tables, kept: ~0.15 s less per process
    )
    return parser, postlex


def _table_cache(grammar: str) -> str | bool:
    """The file in which lark keeps its parser tables, or ``False`` to build them in memory.

    lark unpickles that file, so it must be one that only this user can write: never lark's default (a
    predictable name in the shared temporary folder), but a file in gradc's private cache folder (0700,
    owner checked). When that folder is unusable the tables are built afresh; the compile cache, which
    needs the same folder, says why.
    """
    from gradc.runtime.cache_dirs import UnsafeCacheError, cache_root, is_own_file, private_directory

    digest = hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest()[:16]
    try:
        path = private_directory(private_directory(cache_root()) / "parser") / f"lark-{digest}.tables"
        if os.path.lexists(path) and not is_own_file(path):
            path.unlink()  # not a regular file of ours: never read it
    except (UnsafeCacheError, OSError):
        return False
    return str(path)


def parse_file(path: str | Path) -> ast.Module:
    """Read and parse a .model file; a missing or unreadable file is a :class:`ModelError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"no such model file: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    return parse_source(decode_source(data, str(path)), str(path))


_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_source(data: bytes, path: str) -> str:
    """Model text is UTF-8 (a leading byte-order mark is dropped): anything else is a located error at the
    first byte that does not decode."""
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith(_UTF16_MARKS):
            raise ModelError("the file is UTF-16 text, not UTF-8; save it as UTF-8",
                             SourceLocation(path, 1, 1, 9)) from None
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start:exc.start].decode("utf-8")) + 1  # the bytes before the bad one decode
        bad = data[exc.start:exc.end]
        shown = ("byte " if len(bad) == 1 else "bytes ") + " ".join(f"0x{b:02x}" for b in bad)
        # the echoed line shows each undecodable byte as \xNN (see the CLI): underline all of them
        raise ModelError(f"the file is not UTF-8 text: {shown} cannot be decoded ({exc.reason}); save it as UTF-8",
                         SourceLocation(path, line, col, col + 4 * len(bad))) from None


def parse_source(source: str, path: str = "<string>") -> ast.Module:
    """Parse model text. Raises :class:`ModelError` with a location on any syntax error."""
    parser, postlex = _lark_parser()
    try:
        tree = parser.parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, path, postlex) from None
    try:
        statements = _ToAst(path).transform(tree)
    except VisitError as exc:  # lark wraps what a transformer method raises
        if isinstance(exc.orig_exc, ModelError):
            raise exc.orig_exc from None
        raise
    return ast.Module(path=path, source=source, statements=tuple(statements))


# ---------------------------------------------------------------- tree -> AST


def _loc(path: str, item: Token | lark.Tree) -> SourceLocation:
    if isinstance(item, Token):
        end = item.end_column if item.end_line == item.line else None
        return SourceLocation(path, item.line, item.column, end)
    meta = item.meta
    end = meta.end_column if getattr(meta, "end_line", None) == meta.line else None
    return SourceLocation(path, meta.line, meta.column, end)


FLOAT_MAX = sys.float_info.max
INT64_MAX = 2**63 - 1


def _number(token: Token, path: str) -> float | int:
    """The value of a number literal. A literal must stand for a finite 64-bit float (an integer literal is
    kept exact, but no larger than that): ``1e309`` or a 400-digit integer is an error at the literal, not
    an ``inf`` (or an OverflowError) further on."""
    text = str(token)
    if all(ch.isdigit() for ch in text):
        digits = text.lstrip("0") or "0"
        # Python refuses int() on more than 4300 digits; anything over 309 digits exceeds the float range.
        value = int(digits) if len(digits) <= 309 else None
        if value is not None and value <= FLOAT_MAX:
            return value
    else:
        value = float(text)
        if math.isfinite(value):
            return value
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
    largest = f"{FLOAT_MAX:.3g}".replace("e+", "e")
    raise ModelError(f"number {shown} is out of range: a number must be finite, at most {largest} in magnitude",
                     _loc(path, token))


class _ToAst(Transformer_NonRecursive):
    """Build :mod:`ast` nodes; locations come from tokens and from lark's propagated positions.

    Non-recursive: a model may nest expressions (or chain pipeline stages) far deeper than Python's stack.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _at(self, item: Token | lark.Tree) -> SourceLocation:
        return _loc(self.path, item)

    # statements ---------------------------------------------------------
    def start(self, items):
        return list(items)

    @v_args(meta=True)
    def model_decl(self, meta, items):
        (name,) = items
        return ast.ModelDecl(loc=self._meta_loc(meta), name=str(name))

    @v_args(meta=True)
    def input_decl(self, meta, items):
        name, type_spec = items
        return ast.InputDecl(loc=self._meta_loc(meta), name=str(name), name_loc=self._at(name), type=type_spec)

    @v_args(meta=True)
    def param_decl(self, meta, items):
        name, type_spec, *init = items
        return ast.ParamDecl(
            loc=self._meta_loc(meta),
            name=str(name),
            name_loc=self._at(name),
            type=type_spec,
            init=init[0] if init else None,
        )

    @v_args(meta=True)
    def output_decl(self, meta, items):
        name, *value = items
        return ast.OutputDecl(
            loc=self._meta_loc(meta), name=str(name), name_loc=self._at(name), value=value[0] if value else None
        )

    @v_args(meta=True)
    def loss_decl(self, meta, items):
        name, value = items
        return ast.LossDecl(loc=self._meta_loc(meta), name=str(name), name_loc=self._at(name), value=value)

    @v_args(meta=True)
    def assign(self, meta, items):
        *names, value = items
        return ast.Assign(loc=self._meta_loc(meta), name=str(names[0]), name_loc=self._at(names[0]), value=value,
                          more=tuple((str(n), self._at(n)) for n in names[1:]))

    @v_args(meta=True)
    def block_def(self, meta, items):
        name = items[0]
        params = next((i for i in items if isinstance(i, tuple)), ())
        body = [i for i in items[1:] if isinstance(i, ast.ParamDecl | ast.Assign | ast.Return)]
        returns = [i for i in body if isinstance(i, ast.Return)]
        if len(returns) > 1:
            raise ModelError("a block returns once", returns[1].loc)
        if returns and body[-1] is not returns[0]:
            raise ModelError("'return' must be the last statement of a block", returns[0].loc)
        return ast.BlockDef(loc=self._meta_loc(meta), name=str(name), name_loc=self._at(name), params=params,
                            body=tuple(i for i in body if not isinstance(i, ast.Return)),
                            result=returns[0] if returns else None)

    def block_params(self, items):
        return tuple(items)

    @v_args(meta=True)
    def block_param(self, meta, items):
        name, *default = items
        return ast.BlockParam(loc=self._at(name), name=str(name), default=default[0] if default else None)

    @v_args(meta=True)
    def return_stmt(self, meta, items):
        return ast.Return(loc=self._meta_loc(meta), values=tuple(items))

    @v_args(meta=True)
    def import_stmt(self, meta, items):
        (token,) = items
        is_path = token.type == "STRING"
        return ast.Import(loc=self._at(token), source=str(token)[1:-1] if is_path else str(token), is_path=is_path)

    @v_args(meta=True)
    def train_block(self, meta, items):
        entries = tuple(item for item in items if isinstance(item, ast.TrainItem))
        return ast.TrainBlock(loc=self._meta_loc(meta), items=entries)

    @v_args(meta=True)
    def train_item(self, meta, items):
        key, value = items
        return ast.TrainItem(loc=self._at(key), key=str(key), value=value)

    @v_args(meta=True)
    def type(self, meta, items):
        name = items[0]
        dtype = str(name)
        if dtype not in DTYPES:
            raise ModelError(
                f"unknown type '{dtype}'{did_you_mean(dtype, DTYPES)} (types are {', '.join(DTYPES)})",
                self._at(name),
            )
        dims = [item for item in items[1:] if isinstance(item, tuple)]
        return ast.TypeSpec(
            loc=self._meta_loc(meta),
            dtype=dtype,
            dims=tuple(d for d, _ in dims),
            dim_locs=tuple(loc for _, loc in dims),
        )

    def dim(self, items):
        (token,) = items
        loc = self._at(token)
        if token.type == "NAME":
            return (str(token), loc)
        value = _number(token, self.path)
        if not isinstance(value, int) or value <= 0:
            raise ModelError(f"a dimension must be a positive integer or a name, got {token}", loc)
        if value > INT64_MAX:
            raise ModelError(f"dimension {token} is too large: a dimension must be below 2^63", loc)
        return (value, loc)

    # expressions --------------------------------------------------------
    def number(self, items):
        (token,) = items
        return ast.Number(loc=self._at(token), value=_number(token, self.path), text=str(token))

    def string(self, items):
        (token,) = items
        return ast.String(loc=self._at(token), value=str(token)[1:-1])

    def name(self, items):
        (token,) = items
        return ast.Name(loc=self._at(token), id=str(token))

    def paren(self, items):
        return items[1]

    @v_args(meta=True)
    def list(self, meta, items):
        return ast.ListLiteral(loc=self._meta_loc(meta), items=tuple(i for i in items if not isinstance(i, Token)))

    def binop(self, items):
        left, op, right = items
        return ast.BinOp(loc=self._at(op), op=str(op), left=left, right=right)

    def subscript(self, items):
        value, bracket, *subscripts = items
        return ast.Subscript(loc=self._at(bracket), value=value,
                             items=tuple(i for i in subscripts if not isinstance(i, Token)))

    def ellipsis(self, items):
        (token,) = items
        return ast.EllipsisItem(loc=self._at(token))

    @v_args(meta=True)
    def slice(self, meta, items):
        bounds = {tree.data: tree.children[0] for tree in items}
        return ast.SliceItem(loc=self._meta_loc(meta), start=bounds.get("slice_start"),
                             stop=bounds.get("slice_stop"), step=bounds.get("slice_step"))

    def neg(self, items):
        minus, operand = items
        if isinstance(operand, ast.Number):
            return ast.Number(loc=self._at(minus), value=-operand.value, text="-" + operand.text)
        return ast.Neg(loc=self._at(minus), operand=operand)

    def call(self, items):
        name = items[0]
        args, kwargs = items[2] if len(items) > 2 else ((), ())
        return ast.Call(loc=self._at(name), func=str(name), func_loc=self._at(name), args=args, kwargs=kwargs)

    def arglist(self, items):
        args, kwargs = [], []
        for item in items:
            if isinstance(item, ast.Keyword):
                kwargs.append(item)
            elif kwargs:
                raise ModelError("a positional argument cannot follow a keyword argument", item.loc)
            else:
                args.append(item)
        return tuple(args), tuple(kwargs)

    def kwarg(self, items):
        name, value = items
        return ast.Keyword(loc=self._at(name), name=str(name), value=value)

    def stage(self, items):
        name = items[0]
        args, kwargs = items[2] if len(items) > 2 else ((), ())
        return (name, args, kwargs)

    def pipeline(self, items):
        source, _arrow, (name, args, kwargs) = items
        return ast.Call(
            loc=self._at(name),
            func=str(name),
            func_loc=self._at(name),
            args=(source, *args),
            kwargs=kwargs,
            piped=True,
        )

    def _meta_loc(self, meta) -> SourceLocation:
        end = meta.end_column if getattr(meta, "end_line", None) == meta.line else None
        return SourceLocation(self.path, meta.line, meta.column, end)


# ---------------------------------------------------------------- syntax errors


def _describe_terminal(name: str, parser: lark.Lark) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _describe_token(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    if token.type == "$END":
        return "end of file"
    kind = {"NAME": "name", "NUMBER": "number", "STRING": "string"}.get(token.type)
    return f"{kind} '{token}'" if kind else f"'{token}'"


_OPERATOR_TERMINALS = {"PLUS", "MINUS", "MULOP", "POW", "ARROW"}


def _expected_list(expected: set[str], parser: lark.Lark, open_brackets: list[Token]) -> str:
    expected = set(expected)
    closers = {"RPAR": ")", "RSQB": "]"}
    open_closer = _OPENERS.get(open_brackets[-1].type) if open_brackets else None
    for name, text in closers.items():
        if name in expected and text != open_closer:
            expected.discard(name)
    words: list[str] = []
    if {"NAME", "NUMBER"} <= expected:
        words.append("an expression")
        expected -= {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS"}
    if len(expected & _OPERATOR_TERMINALS) >= 2:
        words.append("an operator")
        expected -= _OPERATOR_TERMINALS
    words.extend(sorted({_describe_terminal(name, parser) for name in expected}))
    return ", ".join(words[:6]) + (", ..." if len(words) > 6 else "")


def _syntax_error(exc: UnexpectedInput, source: str, path: str, postlex: _NewlinePostLexer) -> ModelError:
    parser, _ = _lark_parser()
    lines = source.splitlines() or [""]
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if not isinstance(line, int) or line < 1:
        line, column = len(lines), len(lines[-1]) + 1
    notes = [f"'{tok}' opened at {tok.line}:{tok.column} is not closed" for tok in postlex.open_brackets[-1:]]

    if isinstance(exc, UnexpectedCharacters):
        char = source[exc.pos_in_stream] if exc.pos_in_stream < len(source) else ""
        return ModelError(f"unexpected character {char!r}", SourceLocation(path, line, column), notes)

    if isinstance(exc, UnexpectedToken | UnexpectedEOF):
        token = getattr(exc, "token", None)
        if isinstance(token, Token) and token.type == "_NL":
            # Point at the end of the line the newline terminates, not at the next line.
            line = token.line
            column = len(lines[line - 1]) + 1 if line <= len(lines) else 1
        keyword_hint = _misspelled_keyword(source, line, path)
        if keyword_hint is not None:
            return keyword_hint
        expected = _acceptable_terminals(exc)
        found = _describe_token(token) if isinstance(token, Token) else "end of file"
        message = f"unexpected {found}"
        if expected:
            message += f"; expected {_expected_list(expected, parser, postlex.open_brackets)}"
        loc = SourceLocation(path, line, column, (column + len(str(token))) if isinstance(token, Token) else None)
        return ModelError(message, loc, notes)

    return ModelError(f"syntax error: {exc}", SourceLocation(path, line, column or 1), notes)


def _acceptable_terminals(exc: UnexpectedInput) -> set[str]:
    """The terminals the parser could take here; exact (via the interactive parser) where lark allows."""
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except Exception:
            pass
    return set(getattr(exc, "expected", None) or ())


def _misspelled_keyword(source: str, line: int, path: str) -> ModelError | None:
    """``inptu x: f32`` fails at 'x'; the real mistake is the first word of the statement."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    stripped = text.lstrip()
    first = stripped.split(maxsplit=1)[0] if stripped else ""
    word = "".join(ch for ch in first if ch.isalnum() or ch == "_")
    if not word or word != first.rstrip(":") or word in STATEMENT_KEYWORDS:
        return None
    rest = stripped[len(first):].lstrip()
    if rest.startswith("=") or rest.startswith("->"):
        return None  # a definition ``name = ...``: the first word is a name, not a keyword
    hint = did_you_mean(word, STATEMENT_KEYWORDS)
    if not hint:
        return None
    col = len(text) - len(stripped) + 1
    return ModelError(
        f"unknown statement '{word}'{hint}", SourceLocation(path, line, col, col + len(word))
    )
