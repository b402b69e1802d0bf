"""The op registry: every op is declared once, here or in a sibling module, as an :class:`OpDef`.

An OpDef holds everything the compiler and runtimes need to know about an op: its operands and
attributes, its shape rule, its NumPy reference forward, its gradient (as graph-building rules, so the
backward pass is an ordinary graph that the passes optimize), its FLOP count and its documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..graph import Node
from ..index_maps import IndexMap
from ..types import TensorType

REQUIRED = object()


class NodeBuilder(Protocol):
    """What gradient rules and decompositions build with: ``compiler/builder.py``'s Builder, where
    ``b.mul(x, 2.0)`` emits a checked node and returns its id. (A protocol, so the registry, which the builder
    reads, does not import it back.)"""

    def emit(self, op_name: str, *operands: int | float, name: str | None = None, **attrs: Any) -> int: ...

    def type(self, ref: int) -> TensorType: ...

    def __getattr__(self, op_name: str) -> Callable[..., int]: ...


# A gradient rule returns, per operand, a thunk that builds that operand's gradient, or None where the
# operand takes no gradient. Thunks let autodiff build only the gradients that are needed.
GradThunk = Callable[[], int] | None
GradRule = Callable[[NodeBuilder, Node, int], Sequence[GradThunk]]
# A decomposition builds a composite op's value out of other ops (primitives, or composites that expand in
# turn) and returns it. It runs after autodiff, so the composite's own gradient rule is the one used.
Decomposition = Callable[[NodeBuilder, Node], int]


@dataclass(frozen=True)
class AttrSpec:
    """An attribute: a compile-time constant such as ``alpha`` or ``axis``.

    kind is one of float, int, bool, axes (None, an int or a list of ints), axis (an int), shape (a list
    of ints and the batch symbol), choice (one of ``choices``) or dtype (f32, f64, i32 or i64; a kernel
    template receives its NumPy scalar type, as in ``{dtype}({x})``).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class OpDef:
    name: str
    operands: tuple[str, ...]
    infer: Callable[[list[TensorType], dict[str, Any]], TensorType]
    forward: Callable[[list[np.ndarray], dict[str, Any]], np.ndarray]
    grad: GradRule | None = None
    attrs: tuple[AttrSpec, ...] = ()
    variadic: bool = False  # takes one or more operands (its single operand name stands for all; attrs by keyword)
    optional: int = 0  # how many trailing operands a call may leave out (attention's mask)
    internal_operands: int = 0  # trailing operands that only passes add, never a call (attention's dropout seed)
    category: str = "elementwise"  # elementwise, reduction, linalg, shape, nn, loss, source, internal
    public: bool = True  # callable from .model files
    pure: bool = True  # same operands and attributes give the same value (CSE may merge it)
    commutative: bool = False  # operand order does not matter (CSE matches a*b with b*a)
    normalize: Callable[[list[TensorType], dict[str, Any]], dict[str, Any]] | None = None
    flops: Callable[[list[TensorType], TensorType, dict[str, Any]], int] | None = None
    shape_only: tuple[int, ...] = ()  # operands read only for their shape
    # For ops that read only shapes: the value when the operand types fix it, else None (constant folding).
    static_value: Callable[[list[TensorType], dict[str, Any]], np.ndarray | None] | None = None
    domains: dict[int, str] = field(default_factory=dict)  # operand -> sampling domain for random tests
    formula: str = ""
    shape_rule: str = ""
    # Kernel template for loop fusion, the same for every target: a scalar expression over the operands
    # ({x}, {a}, ...) and attributes ({alpha}, ...); helpers such as sigmoid() come from the target's
    # kernel library. Ops without one (matmul, softmax, losses) are lowered by each target's own table.
    scalar: str | None = None
    reduce: str | None = None  # reductions that can end a fused loop: "sum", "mean" or "max"
    # Its values are 0 or 1 (a mask): a sum of fewer than 2**24 of them is exact in float32, so a target may
    # accumulate it in the value's own dtype.
    zero_one: bool = False
    # Several results (``scan``): the forward returns a tuple of arrays, each read through a ``result``
    # node, and the gradient rule receives a list of gradients, one per result (None where none flows).
    multi_result: bool = False
    left_aligned: tuple[int, ...] = ()  # operands indexed by the leading loop indices (labels of onehot)
    # Operands converted to the result's dtype before the op reads them: the builder inserts explicit ``cast``
    # nodes, so the promotion rule is visible in the graph and every target computes in one dtype.
    casts: tuple[int, ...] = ()
    # A composite op: the ``expand`` pass (passes/expand.py) replaces it by the graph this builds, before the
    # kernels are scheduled, so targets lower only primitives and library calls. Autodiff, the reference
    # executor and the summary still see the composite (its gradient rule, its NumPy forward, its FLOPs).
    decompose: Decomposition | None = None
    # A decomposition that applies to some nodes of the op only (pad's reflecting mode); None: to every node.
    decompose_when: Callable[[Node], bool] | None = None
    # An op that only moves elements (transpose, expand_dims; later slices, pads, windows): where its value at
    # an output position comes from in its operand, as an affine map from the output's indices. The schedule
    # composes it into the maps of the loops that read the value, so the op need not exist in memory.
    index_map: Callable[[Node], IndexMap] | None = None
    # For an index map with guards (a pad): the value read where a guard fails.
    fill: Callable[[Node], float] | None = None
    # False for an op whose map reads another tensor (a gather's indices): it is always a loop of its own, and
    # what it reads is in memory.
    elidable: bool = True
    # Materialized (a target must produce it in memory), the op is a view of its operand's contiguous memory
    # (a reshape) rather than a copy loop.
    view: bool = False

    @property
    def composite(self) -> bool:
        return self.decompose is not None

    def expands(self, node: Node) -> bool:
        """Whether the ``expand`` pass replaces this node by its decomposition."""
        return self.decompose is not None and (self.decompose_when is None or self.decompose_when(node))

    @property
    def operand_signature(self) -> list[str]:
        """The operands as a call writes them: ``xs...`` for a variadic op, ``[mask]`` for an optional one."""
        if self.variadic:
            return [f"{self.operands[0]}..."]
        public = self.public_operands
        required = len(public) - self.optional
        return [name if k < required else f"[{name}]" for k, name in enumerate(public)]

    @property
    def public_operands(self) -> tuple[str, ...]:
        """The operands a call may write (not the internal ones that passes add)."""
        return self.operands[:len(self.operands) - self.internal_operands]

    @property
    def signature(self) -> str:
        parts = self.operand_signature
        for a in self.attrs:
            parts.append(a.name if a.required else f"{a.name}={_show_default(a.default)}")
        return f"{self.name}({', '.join(parts)})"

    def attr_spec(self, name: str) -> AttrSpec | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None

    def count_flops(self, in_types: list[TensorType], out: TensorType, attrs: dict[str, Any]) -> int:
        if self.flops is not None:
            return int(self.flops(in_types, out, attrs))
        if self.category in ("source", "shape", "internal"):
            return 0
        return out.numel()


def _show_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is declared twice")
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    return REGISTRY[name]


def public_ops() -> list[OpDef]:
    return [op for op in REGISTRY.values() if op.public]
