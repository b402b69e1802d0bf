"""The abstract syntax tree of a .model file.

Every node keeps the location it came from, so the compiler can report errors at ``line:col`` and
tag each graph node with its source line. Pipelines (``a -> f(b) -> g``) are desugared by the parser
into nested :class:`Call` nodes with ``piped=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import SourceLocation


@dataclass(frozen=True)
class Node:
    loc: SourceLocation


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Number(Node):
    value: float | int
    text: str


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class ListLiteral(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Node):
    func: str
    func_loc: SourceLocation
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    piped: bool = False  # the first argument came from the left of '->'


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # one of + - * / ^ @
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Node):
    operand: Expr


@dataclass(frozen=True)
class SliceItem(Node):
    """``start:stop:step`` in a subscript; a bound left out is None."""

    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass(frozen=True)
class EllipsisItem(Node):
    """``...`` in a subscript: as many whole axes as the other items leave."""


@dataclass(frozen=True)
class Subscript(Node):
    """``value[items]``: each item an integer index (an expression), a :class:`SliceItem` or an
    :class:`EllipsisItem`."""

    value: Expr
    items: tuple[Expr | SliceItem | EllipsisItem, ...]


Expr = Number | String | Name | ListLiteral | Call | BinOp | Neg | Subscript


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class TypeSpec(Node):
    dtype: str
    dims: tuple[int | str, ...] = ()  # () is a scalar; a str is the symbolic batch dimension
    dim_locs: tuple[SourceLocation, ...] = ()


@dataclass(frozen=True)
class ModelDecl(Node):
    name: str


@dataclass(frozen=True)
class InputDecl(Node):
    name: str
    name_loc: SourceLocation
    type: TypeSpec


@dataclass(frozen=True)
class ParamDecl(Node):
    name: str
    name_loc: SourceLocation
    type: TypeSpec
    init: Expr | None


@dataclass(frozen=True)
class Assign(Node):
    name: str
    name_loc: SourceLocation
    value: Expr
    # ``a, b = f(x)``: the names after the first, for a block with several results
    more: tuple[tuple[str, SourceLocation], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *(name for name, _ in self.more))


@dataclass(frozen=True)
class OutputDecl(Node):
    name: str
    name_loc: SourceLocation
    value: Expr | None


@dataclass(frozen=True)
class LossDecl(Node):
    name: str
    name_loc: SourceLocation
    value: Expr


@dataclass(frozen=True)
class TrainItem(Node):
    key: str
    value: Expr


@dataclass(frozen=True)
class TrainBlock(Node):
    items: tuple[TrainItem, ...]


@dataclass(frozen=True)
class BlockParam(Node):
    name: str
    default: Expr | None  # None: a tensor input; else an attribute with its default


@dataclass(frozen=True)
class Return(Node):
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class BlockDef(Node):
    name: str
    name_loc: SourceLocation
    params: tuple[BlockParam, ...]
    body: tuple[Statement, ...]  # param declarations and assignments, in order
    result: Return | None

    @property
    def inputs(self) -> tuple[BlockParam, ...]:
        return tuple(p for p in self.params if p.default is None)

    @property
    def attributes(self) -> tuple[BlockParam, ...]:
        return tuple(p for p in self.params if p.default is not None)


@dataclass(frozen=True)
class Import(Node):
    source: str  # a path (relative to the importing file) or a library name
    is_path: bool


Statement = ModelDecl | InputDecl | ParamDecl | Assign | OutputDecl | LossDecl | TrainBlock | BlockDef | Import


@dataclass(frozen=True)
class Module:
    """A parsed .model file: its statements in file order, with the text they came from."""

    path: str
    source: str
    statements: tuple[Statement, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str | None:
        for stmt in self.statements:
            if isinstance(stmt, ModelDecl):
                return stmt.name
        return None
