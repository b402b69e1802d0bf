"""Affine index maps: where a loop reads an operand.

A loop kernel runs over an iteration domain with indices ``i0 .. i<n-1>``. Each value it loads from memory is
read at an :class:`IndexMap`: for every axis of the operand, an affine expression of the loop indices,
``sum(coefficient * i_k) + offset``. NumPy broadcasting is the simplest case (axis j reads ``i_{j+shift}``, or 0
where the operand has size 1); a transpose permutes the expressions; a slice ``x[a::s]`` is ``s * i + a``; a
sliding window is ``stride * i_out + i_window``. Maps compose: a loop that reads ``transpose(x)`` through its
broadcast map reads ``x`` through the composition, so the transpose never exists in memory.

The schedule (``compiler/schedule.py``) builds and composes maps; a target only renders them
(:meth:`IndexMap.render`). Ops that only move elements declare their map in their OpDef (``index_map``).
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def substitute(self, inner: Sequence[AffineExpr]) -> AffineExpr:
        """This expression with each loop index ``i_k`` replaced by ``inner[k]``."""
        combined: dict[int, int] = {}
        offset = self.offset
        for axis, coefficient in self.terms:
            expr = inner[axis]
            offset += coefficient * expr.offset
            for inner_axis, inner_coefficient in expr.terms:
                combined[inner_axis] = combined.get(inner_axis, 0) + coefficient * inner_coefficient
        return AffineExpr(tuple((a, c) for a, c in sorted(combined.items()) if c), offset)

    def render(self, index: Sequence[str]) -> str:
        parts = [index[a] if c == 1 else f"{c} * {index[a]}" for a, c in self.terms]
        if self.offset or not parts:
            parts.append(str(self.offset))
        return " + ".join(parts)


@dataclass(frozen=True)
class IndexMap:
    """One affine expression per axis of the operand read (an operand of rank 0 has none)."""

    exprs: tuple[AffineExpr, ...]

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

    def compose(self, outer: IndexMap) -> IndexMap:
        """Reading through ``outer`` (loop -> this op's output) then this map (output -> operand): loop -> operand."""
        return IndexMap(tuple(e.substitute(outer.exprs) for e in self.exprs))

    @property
    def rank(self) -> int:
        return len(self.exprs)

    def render(self, index: Sequence[str]) -> str:
        """The subscript, ``i0, 0`` or ``i1, i0``, for loop indices named ``index``."""
        return ", ".join(e.render(index) for e in self.exprs)

    def __str__(self) -> str:
        return "[" + self.render([f"i{k}" for k in range(64)]) + "]"


@lru_cache(maxsize=4096)
def _broadcast(shape: tuple[Dim, ...], domain: tuple[Dim, ...], left: bool) -> IndexMap:
    shift = 0 if left else len(domain) - len(shape)
    return IndexMap(tuple(AffineExpr() if d == 1 and domain[j + shift] != 1 else AffineExpr.axis(j + shift)
                          for j, d in enumerate(shape)))
