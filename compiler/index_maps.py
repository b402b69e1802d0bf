"""Affine index maps: where a loop reads an operand.

A loop kernel runs over an iteration domain with indices ``i0 .. i<n-1>``. Each value it loads from memory is
read at an :class:`IndexMap`: for every axis of the operand, an affine expression of the loop indices,
``sum(coefficient * i_k) + offset``. NumPy broadcasting is the simplest case (axis j reads ``i_{j+shift}``, or 0
where the operand has size 1); a transpose permutes the expressions; a slice ``x[a::s]`` is ``s * i + a``; a
sliding window is ``stride * i_out + i_window``. Maps compose: a loop that reads ``transpose(x)`` through its
broadcast map reads ``x`` through the composition, so the transpose never exists in memory.

A map may also carry **guards**: affine expressions that must lie in ``[0, size)`` for the read to happen.
A pad reads its operand at ``i - before`` where that is inside the operand, and its fill value elsewhere; a
concatenation is a sum of such pads. Composing a guarded map substitutes into its guards too, so a slice of a
pad of a transpose is still one guarded read of the original value.

The schedule (``compiler/schedule.py``) builds and composes maps; a target only renders them
(:meth:`IndexMap.render`, :meth:`Guard.render`). Ops that only move elements declare their map in their OpDef
(``index_map``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

Dim = int | str


@dataclass(frozen=True)
class AffineExpr:
    """``sum(coefficient * i_axis for axis, coefficient in terms) + offset``; no terms is the constant ``offset``."""

    terms: tuple[tuple[int, int], ...] = ()
    offset: int = 0

    @staticmethod
    def axis(k: int) -> AffineExpr:
        return AffineExpr(((k, 1),))

    def substitute(self, inner: Sequence[Expr]) -> Expr:
        """This expression with each loop index ``i_k`` replaced by ``inner[k]``. An index read from memory
        (:class:`Indirect`) can only be taken as it is: ``i_k`` alone, not scaled or shifted."""
        indirect = [inner[axis] for axis, _ in self.terms if isinstance(inner[axis], Indirect)]
        if indirect:
            if self.terms != ((self.terms[0][0], 1),) or self.offset:
                raise ValueError("an index read from memory cannot be scaled or shifted")
            return indirect[0]
        combined: dict[int, int] = {}
        offset = self.offset
        for axis, coefficient in self.terms:
            expr = inner[axis]
            offset += coefficient * expr.offset
            for inner_axis, inner_coefficient in expr.terms:
                combined[inner_axis] = combined.get(inner_axis, 0) + coefficient * inner_coefficient
        return AffineExpr(tuple((a, c) for a, c in sorted(combined.items()) if c), offset)

    def render(self, index: Sequence[str], name_of: NameOf | None = None) -> str:
        """``i1 + 2``, ``-2 * i1 + 13``, ``i0 - 1`` or ``3``."""
        text = ""
        for axis, coefficient in self.terms:
            term = index[axis] if abs(coefficient) == 1 else f"{abs(coefficient)} * {index[axis]}"
            text += (f" - {term}" if coefficient < 0 else f" + {term}") if text else (
                f"-{term}" if coefficient < 0 else term)
        if not text:
            return str(self.offset)
        if self.offset:
            text += f" - {-self.offset}" if self.offset < 0 else f" + {self.offset}"
        return text


@dataclass(frozen=True)
class Indirect:
    """An index read from memory: the integer that ``value`` (a node id) holds at ``map`` of the loop's indices,
    as a gather reads its indices (``x[idx[i0], i1]``)."""

    value: int
    map: IndexMap

    def substitute(self, inner: Sequence[Expr]) -> Indirect:
        return Indirect(self.value, IndexMap(tuple(e.substitute(inner) for e in self.map.exprs)))

    def render(self, index: Sequence[str], name_of: NameOf | None = None) -> str:
        if name_of is None:
            raise ValueError("rendering an index read from memory needs the names of values")
        return f"{name_of(self.value)}[{self.map.render(index, name_of) or '0'}]"


Expr = AffineExpr | Indirect
NameOf = Callable[[int], str]  # a value's name in the generated code


@dataclass(frozen=True)
class Guard:
    """The condition ``0 <= expr < size`` under which a guarded map reads its operand."""

    expr: Expr
    size: int

    def substitute(self, inner: Sequence[Expr]) -> Guard:
        return Guard(self.expr.substitute(inner), self.size)

    def render(self, index: Sequence[str], name_of: NameOf | None = None) -> str:
        return f"0 <= {self.expr.render(index, name_of)} < {self.size}"


@dataclass(frozen=True)
class IndexMap:
    """One affine expression per axis of the operand read (an operand of rank 0 has none), and the guards
    under which the read happens (a padding op's; elsewhere its fill value is read instead)."""

    exprs: tuple[Expr, ...]
    guards: tuple[Guard, ...] = ()

    @staticmethod
    def identity(rank: int) -> IndexMap:
        return IndexMap(tuple(AffineExpr.axis(k) for k in range(rank)))

    @staticmethod
    def broadcast(shape: Sequence[Dim], domain: Sequence[Dim], left: bool = False) -> IndexMap:
        """NumPy broadcasting of an operand of ``shape`` into a loop over ``domain``: right-aligned (``left``
        aligns it with the leading loop axes), and index 0 on an axis of size 1 that the domain stretches."""
        return _broadcast(tuple(shape), tuple(domain), left)

    @staticmethod
    def permutation(axes: Sequence[int]) -> IndexMap:
        """The map of a transpose: its output axis k is its operand's axis ``axes[k]``."""
        position = {a: k for k, a in enumerate(axes)}
        return IndexMap(tuple(AffineExpr.axis(position[a]) for a in range(len(axes))))

    @staticmethod
    def dropping(rank: int, inserted: Sequence[int]) -> IndexMap:
        """The map of an op that inserts size-1 axes at ``inserted`` (expand_dims) into an operand of ``rank``."""
        kept = [k for k in range(rank + len(inserted)) if k not in inserted]
        return IndexMap(tuple(AffineExpr.axis(k) for k in kept))

    @staticmethod
    def shifted(rank: int, axis: int, offset: int, size: int) -> IndexMap:
        """The map of a pad along ``axis``: the operand (``size`` long there) is read at ``i - offset``, guarded."""
        exprs = [AffineExpr.axis(k) for k in range(rank)]
        exprs[axis] = AffineExpr(((axis, 1),), -offset)
        return IndexMap(tuple(exprs), (Guard(exprs[axis], size),))

    def compose(self, outer: IndexMap) -> IndexMap:
        """Reading through ``outer`` (loop -> this op's output) then this map (output -> operand): loop -> operand.
        The result keeps this map's guards, in terms of the loop's indices; ``outer``'s own guards are the
        caller's to keep (they guard a different fill, see the schedule's ``Load``)."""
        return IndexMap(tuple(e.substitute(outer.exprs) for e in self.exprs),
                        tuple(g.substitute(outer.exprs) for g in self.guards))

    def unguarded(self) -> IndexMap:
        return IndexMap(self.exprs)

    @property
    def rank(self) -> int:
        return len(self.exprs)

    def render(self, index: Sequence[str], name_of: NameOf | None = None) -> str:
        """The subscript, ``i0, 0`` or ``i1, i0``, for loop indices named ``index`` (and, for an index read from
        memory, the values named by ``name_of``)."""
        return ", ".join(e.render(index, name_of) for e in self.exprs)

    def indirect_values(self) -> list[int]:
        """The values this map reads its indices from (a gather's), in order."""
        found = [e.value for e in (*self.exprs, *(g.expr for g in self.guards)) if isinstance(e, Indirect)]
        return list(dict.fromkeys(found))

    def __str__(self) -> str:
        index = [f"i{k}" for k in range(64)]
        name_of = lambda value: f"%{value}"
        guards = "".join(f" if {g.render(index, name_of)}" for g in self.guards)
        return "[" + self.render(index, name_of) + "]" + guards


@lru_cache(maxsize=4096)
def _broadcast(shape: tuple[Dim, ...], domain: tuple[Dim, ...], left: bool) -> IndexMap:
    shift = 0 if left else len(domain) - len(shape)
    return IndexMap(tuple(AffineExpr() if d == 1 and domain[j + shift] != 1 else AffineExpr.axis(j + shift)
                          for j, d in enumerate(shape)))
