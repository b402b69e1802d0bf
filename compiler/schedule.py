"""The schedule stage: from the fused graph's kernels to what every target renders, decided once.

For each entry point (``forward``, ``gradients``, ``train_<optimizer>``) the schedule lists the kernels that
compute its results, in order:

- :class:`LoopKernel`: an iteration domain, a scalar body (one :class:`Statement` per node, reductions ending
  the loop) and, per value read from memory, an affine :class:`~gradc.compiler.index_maps.IndexMap`
  (broadcasting, and any element-moving op such as a transpose composed into it).
- :class:`GemmKernel`: a library call (a matrix product), with operands read as stored or swapped (a 2-D
  transpose folded into the call) and an optional epilogue, the elementwise loop over the product that runs
  on the product still in a register (a bias add and its activation).
- :class:`OpKernel`: what remains a single op a target renders by name (views: reshape, expand_dims; shape
  queries).

Decided here and nowhere else: which values are stored (read by another kernel of the entry point, or one of
its results), which element-moving ops exist in memory (a transpose read only by loops and matrix products
never does), which loop fuses into which product's epilogue, and the index map of every load. A target
renders these decisions; it does not revisit them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .entry_points import EntryPoint, entry_points, wanted_nodes
from .graph import Graph, Kernel, Node
from .index_maps import AffineExpr, Guard, IndexMap
from .ops.registry import get_op

SWAP = (1, 0)


@dataclass(frozen=True)
class Register:
    """A value computed earlier in the same loop (or handed in by the call kernel it is an epilogue of)."""

    node: int


@dataclass(frozen=True)
class Literal:
    """A scalar constant, written into the code as a number."""

    value: float | int | bool
    dtype: str


@dataclass(frozen=True)
class Padding:
    """Where ``guards`` fail, a load reads ``fill`` instead of memory (a pad, or one part of a concatenation)."""

    guards: tuple[Guard, ...]
    fill: float | int | bool
    dtype: str


@dataclass(frozen=True)
class Load:
    """A value read from memory at an index map of the loop's indices; ``paddings``, outermost first, say where
    a fill value is read instead (each padding op between the loop and the value in memory adds one)."""

    value: int
    map: IndexMap
    paddings: tuple[Padding, ...] = ()

    def guarded(self, element: str, index: Sequence[str], fill_code: Callable[[Padding], str],
                name_of: Callable[[int], str] | None = None,
                decided: Callable[[Guard], bool | None] | None = None) -> str:
        """The load's expression, given how the element is read (``x0[i0, i1 + 2]``): wrapped, for each padding
        from the innermost out, in ``(element if <guards> else fill)``. Python's conditional evaluates only the
        branch taken, so memory is never read outside the operand. ``decided`` gives the guards known to hold
        (True) or fail (False) where the code runs (a part of a split loop), which are not tested."""
        code = element
        for padding in reversed(self.paddings):
            known = [decided(guard) if decided is not None else None for guard in padding.guards]
            if False in known:
                code = fill_code(padding)
                continue
            open_guards = [g for g, k in zip(padding.guards, known, strict=True) if k is None]
            if open_guards:
                condition = " and ".join(guard.render(index, name_of) for guard in open_guards)
                code = f"({code} if {condition} else {fill_code(padding)})"
        return code


Operand = Register | Literal | Load


@dataclass(frozen=True)
class Statement:
    """One node of a loop's body; ``operands`` per operand of its op (None where only the shape is read)."""

    node: Node
    operands: tuple[Operand | None, ...]

    @property
    def reduce(self) -> str | None:
        return get_op(self.node.op).reduce


@dataclass(frozen=True)
class LoopKernel:
    id: int  # the fused graph's kernel id (``gradc graph --stage fused``), for comments
    domain: tuple[int | str, ...]
    statements: tuple[Statement, ...]
    stored: tuple[int, ...]  # elementwise nodes written to memory (reductions always are)
    loads: tuple[int, ...]  # the values read from memory, in order of first use
    given: tuple[int, ...] = ()  # values in registers on entry (the product, in an epilogue)
    kind = "loop"

    @property
    def nodes(self) -> list[Node]:
        return [s.node for s in self.statements]

    @property
    def reductions(self) -> list[Node]:
        return [s.node for s in self.statements if s.reduce is not None]


def innermost_splits(kernel: LoopKernel) -> tuple[int, ...]:
    """Where to split a loop kernel's innermost loop so that no guard on its index changes inside a part: the
    positions at which a guard ``0 <= i + c < size`` of a load (a pad, a part of a concatenation) turns true or
    false, i = -c and i = size - c, above 0. Split there, each part reads memory or the fill value without a
    test per element, and LLVM can vectorize it (a concatenation of four gates' gradients took 45 us a step
    of an LSTM's backward pass tested per element). Empty when no guard depends on that index alone."""
    if not kernel.domain:
        return ()
    points: set[int] = set()
    for guard in innermost_guards(kernel):
        points |= {-guard.expr.offset, guard.size - guard.expr.offset}
    extent = kernel.domain[-1]
    splits = tuple(sorted(p for p in points if p > 0 and (not isinstance(extent, int) or p < extent)))
    return splits if len(splits) < MAX_PARTS else ()


MAX_PARTS = 8  # a loop that would be split into more parts keeps its tests (code size)


def innermost_guards(kernel: LoopKernel) -> list[Guard]:
    """The guards of the kernel's loads that depend on the innermost loop index alone, with coefficient 1."""
    axis = len(kernel.domain) - 1
    found = []
    for statement in kernel.statements:
        for operand in statement.operands:
            if not isinstance(operand, Load):
                continue
            for padding in operand.paddings:
                found += [g for g in padding.guards
                          if isinstance(g.expr, AffineExpr) and g.expr.terms == ((axis, 1),)]
    return found


def guard_at(guard: Guard, position: int, axis: int) -> bool | None:
    """Whether ``guard`` holds at innermost index ``position`` (None for a guard on other indices)."""
    if not (isinstance(guard.expr, AffineExpr) and guard.expr.terms == ((axis, 1),)):
        return None
    return 0 <= position + guard.expr.offset < guard.size


@dataclass(frozen=True)
class GemmOperand:
    value: int  # the value read: the matrix, or the source of a folded 2-D transpose
    swapped: bool = False  # read with its two axes swapped (the transpose is folded into the call)


@dataclass(frozen=True)
class GemmKernel:
    id: int
    node: Node  # the matmul
    a: GemmOperand
    b: GemmOperand
    epilogue: LoopKernel | None = None
    store_product: bool = True  # something besides the epilogue reads the product
    kind = "gemm"

    @property
    def nodes(self) -> list[Node]:
        return [self.node, *(self.epilogue.nodes if self.epilogue else [])]


@dataclass(frozen=True)
class OpKernel:
    id: int
    node: Node
    kind = "op"

    @property
    def nodes(self) -> list[Node]:
        return [self.node]


ScheduledKernel = LoopKernel | GemmKernel | OpKernel


@dataclass(frozen=True)
class EntrySchedule:
    point: EntryPoint
    kernels: tuple[ScheduledKernel, ...]
    results: tuple[int, ...]  # the node ids returned (the objective and the gradients, for a train step)
    regions: tuple = ()  # batch_regions.BatchRegion: kernels a target may run chunk of the batch by chunk


@dataclass(frozen=True)
class ProgramSchedule:
    graph: Graph  # the fused graph the schedule was made from
    entries: dict[str, EntrySchedule]

    def __iter__(self) -> Iterator[EntrySchedule]:
        return iter(self.entries.values())


def schedule_program(graph: Graph) -> ProgramSchedule:
    """The schedule of every entry point of a fused graph. Entry points that compute the same values (the
    ``train_<optimizer>`` steps differ only in the update after them) share one plan of their kernels."""
    if graph.kernels is None:
        raise ValueError("the schedule needs a fused graph (run the fusion pass first)")
    from .batch_regions import plan_regions  # it reads this module's kernel classes

    facts = _GraphFacts(graph)
    plans: dict[tuple[int, ...], tuple] = {}
    entries = {}
    param_names = list(graph.params())
    for name, point in entry_points(graph).items():
        wanted = tuple(wanted_nodes(graph, point, param_names))
        if wanted not in plans:
            kernels, results = _EntryPlanner(facts, list(wanted)).plan()
            plans[wanted] = (*plan_regions(kernels, graph), results)
        kernels, regions, results = plans[wanted]
        entries[name] = EntrySchedule(point, kernels, results, regions)
    return ProgramSchedule(graph, entries)


class _GraphFacts:
    """What every entry point's plan reads, computed once per graph: nodes by id, each node's readers (the
    consumers that read its value, not only its shape), each node's kernel and each kernel's position."""

    def __init__(self, graph: Graph):
        self.g = graph
        self.node = {n.id: n for n in graph.nodes()}
        self.readers: dict[int, list[int]] = {n: [] for n in self.node}
        for node in self.node.values():
            skip = get_op(node.op).shape_only
            for k, operand in enumerate(node.inputs):
                if k not in skip and (not self.readers[operand] or self.readers[operand][-1] != node.id):
                    self.readers[operand].append(node.id)
        self.reduces = {n.id for n in self.node.values() if get_op(n.op).reduce is not None}
        self.kernel_of = {n: k for k in graph.kernels for n in k.nodes}
        self.kernel_by_id = {k.id: k for k in graph.kernels}
        self.position = {k.id: p for p, k in enumerate(graph.kernels)}
        # element-moving ops that could be elided, the last first (a reader's fate is decided before its operand's)
        self.index_ops = sorted((n.id for n in self.node.values() if get_op(n.op).index_map is not None
                                 and get_op(n.op).elidable
                                 and self.kernel_of.get(n.id) is not None and self.kernel_of[n.id].kind == "op"),
                                reverse=True)

    def ancestors(self, roots: list[int]) -> set[int]:
        """The nodes whose values ``roots`` need (operands read only for their shape do not count)."""
        needed, stack = set(), list(roots)
        while stack:
            node_id = stack.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            node = self.node[node_id]
            skip = get_op(node.op).shape_only
            stack.extend(i for k, i in enumerate(node.inputs) if k not in skip)
        return needed


class _EntryPlanner:
    def __init__(self, facts: _GraphFacts, wanted: list[int]):
        self.facts = facts
        self.g = facts.g
        self.wanted = wanted
        self.needed = facts.ancestors(wanted)
        self.kernel_of = facts.kernel_of
        self.kernel_by_id = facts.kernel_by_id
        self.wanted_set = set(wanted)
        self.gemm_read: set[int] = set()
        self.elided = self._elided_index_ops()

    # -------------------------------------------------------------- element-moving ops
    def _data_readers(self, node_id: int) -> list[Node]:
        return [self.facts.node[c] for c in self.facts.readers[node_id] if c in self.needed]

    def _elided_index_ops(self) -> set[int]:
        """Element-moving ops that never exist in memory: every reader is a loop (which reads the operand
        through the composed map), a matrix product that takes it as a swapped operand, or another elided
        one. Decided from the last node back, so a reader's fate is known first. What a matrix product reads,
        directly or through elided ops, may only be a chain of 2-D swaps (the product reads the value in memory,
        swapped or not): ``gemm_read`` holds the elided ops a product reads that way."""
        elided: set[int] = set()
        for node_id in self.facts.index_ops:
            node = self.facts.node[node_id]
            if node_id not in self.needed or node_id in self.wanted_set:
                continue
            readers = self._data_readers(node_id)
            if readers and all(self._reads_through(node, r, elided) for r in readers):
                elided.add(node_id)
                if any(r.op == "matmul" or r.id in self.gemm_read for r in readers):
                    self.gemm_read.add(node_id)
        return elided

    def _reads_through(self, node: Node, reader: Node, elided: set[int]) -> bool:
        if not get_op(reader.op).elidable:
            return False  # a gather reads its operands in memory
        if reader.id in elided:
            return reader.id not in self.gemm_read or _is_swap(node)
        if self.kernel_of[reader.id].kind == "loop" or _is_copy_loop(reader):
            return True
        return reader.op == "matmul" and _foldable_into_gemm(self.g, node, reader)

    def _source(self, value: int, read: IndexMap, paddings: tuple[Padding, ...] = ()) -> Load:
        """A load of ``value`` at ``read``, through any elided element-moving ops to the value in memory; each
        guarded one (a pad) adds its guards, composed into the loop's indices, and its fill."""
        while value in self.elided:
            node = self.facts.node[value]
            read = get_op(node.op).index_map(node).compose(read)
            if read.guards:
                paddings = (*paddings, _padding(node, read.guards))
                read = read.unguarded()
            value = node.inputs[0]
        return Load(value, read, paddings)

    def _in_memory(self, value: int) -> int:
        """The value a read of ``value`` loads: itself, or the source of the elided ops in between."""
        while value in self.elided:
            value = self.facts.node[value].inputs[0]
        return value

    # -------------------------------------------------------------- kernels
    def plan(self) -> tuple[tuple[ScheduledKernel, ...], tuple[int, ...]]:
        loops: dict[int, LoopKernel] = {}
        kernels: list[ScheduledKernel] = []
        epilogue_of = self._epilogues()
        taken = set(epilogue_of.values())
        for kernel in self.g.kernels:
            members = [n for n in kernel.nodes if n in self.needed]
            if not members or kernel.id in taken:
                continue
            node = self.facts.node[members[0]]
            if kernel.kind == "loop":
                loops[kernel.id] = self._loop(kernel, members)
                kernels.append(loops[kernel.id])
            elif node.id in self.elided:
                continue
            elif node.op == "matmul":
                epilogue = epilogue_of.get(kernel.id)
                kernels.append(self._gemm(kernel, node, None if epilogue is None else self.kernel_by_id[epilogue]))
            elif _is_copy_loop(node):
                kernels.append(self._copy_loop(kernel, node))
            else:
                kernels.append(OpKernel(kernel.id, node))
        return tuple(kernels), tuple(self.wanted)

    def _stored(self, members: list[int]) -> tuple[int, ...]:
        inside = set(members)
        needed, readers, reduces = self.needed, self.facts.readers, self.facts.reduces
        return tuple(m for m in members if m not in reduces and (
            m in self.wanted_set or any(r not in inside and r in needed for r in readers[m])))

    def _loop(self, kernel: Kernel, members: list[int], given: tuple[int, ...] = (),
              outside: tuple[int, ...] = ()) -> LoopKernel:
        """A loop over ``members`` of ``kernel``; ``given`` are in registers on entry, and ``outside`` are nodes
        that count as inside for storage (the product an epilogue belongs to)."""
        computed: set[int] = set(given)
        loads: list[int] = []
        statements = []
        for node_id in members:
            node = self.facts.node[node_id]
            op = get_op(node.op)
            operands: list[Operand | None] = []
            for position, operand in enumerate(node.inputs):
                if position in op.shape_only:
                    operands.append(None)
                    continue
                read = self._operand(operand, position in op.left_aligned, kernel.domain, computed)
                if isinstance(read, Load) and read.value not in loads:
                    loads.append(read.value)
                operands.append(read)
            statements.append(Statement(node, tuple(operands)))
            if op.reduce is None:
                computed.add(node_id)
        stored = tuple(m for m in self._stored([*outside, *members]) if m not in outside)
        return LoopKernel(kernel.id, kernel.domain, tuple(statements), stored, tuple(loads), given)

    def _operand(self, operand: int, left: bool, domain: tuple, computed: set[int]) -> Operand:
        if operand in computed:
            return Register(operand)
        source = self.facts.node[operand]
        if source.op == "const" and not source.type.shape:
            return Literal(source.attrs["value"], source.type.dtype)
        return self._source(operand, IndexMap.broadcast(source.type.shape, domain, left))

    def _copy_loop(self, kernel: Kernel, node: Node) -> LoopKernel:
        """An element-moving op that must exist in memory (a result, or read by an op that needs it there): a
        loop over its value that reads its operand through its map."""
        read = get_op(node.op).index_map(node)
        paddings = (_padding(node, read.guards),) if read.guards else ()
        load = self._source(node.inputs[0], read.unguarded(), paddings)
        indices = [v for v in read.indirect_values() if v != load.value]  # a gather's, read in memory too
        return LoopKernel(kernel.id, node.type.shape, (Statement(node, (load,)),), (node.id,),
                          (load.value, *indices))

    def _gemm(self, kernel: Kernel, node: Node, epilogue: Kernel | None) -> GemmKernel:
        a, b = (self._gemm_operand(i) for i in node.inputs)
        if epilogue is None:
            return GemmKernel(kernel.id, node, a, b)
        members = [n for n in epilogue.nodes if n in self.needed]
        loop = self._loop(epilogue, members, given=(node.id,), outside=(node.id,))
        store_product = node.id in self._stored([node.id, *members])
        return GemmKernel(kernel.id, node, a, b, loop, store_product)

    def _gemm_operand(self, value: int) -> GemmOperand:
        """The value in memory a product reads, and whether swapped: through a chain of elided 2-D swaps."""
        swapped = False
        while value in self.elided:
            value, swapped = self.facts.node[value].inputs[0], not swapped
        return GemmOperand(value, swapped)

    def _epilogues(self) -> dict[int, int]:
        """matmul kernel id -> the loop kernel that runs in its epilogue: the first later loop over the
        product's shape that reads the product and reads nothing else computed after it (a dense layer's bias
        add and activation; in the backward pass, the activation's mask with the bias gradient's column sum).
        Only 2-D products (the dense layers) take one."""
        position = self.facts.position
        chosen: dict[int, int] = {}
        taken: set[int] = set()
        for kernel in self.g.kernels:
            node = self.facts.node[kernel.nodes[0]]
            if kernel.kind != "op" or node.op != "matmul" or node.id not in self.needed:
                continue
            if node.type.rank != 2 or any(self.facts.node[i].type.rank != 2 for i in node.inputs):
                continue
            candidates = sorted({self.kernel_of[r.id].id for r in self._data_readers(node.id)}, key=position.get)
            for loop_id in candidates:
                loop = self.kernel_by_id[loop_id]
                if loop.kind != "loop" or loop.id in taken or loop.domain != node.type.shape:
                    continue
                members = [n for n in loop.nodes if n in self.needed]
                inside = set(loop.nodes)
                direct = {i for m in members for i in self.facts.node[m].inputs if i not in inside}
                reads = {self._in_memory(i) for i in direct}
                if any(i != node.id and self._in_memory(i) == node.id for i in direct):
                    continue  # it reads the product through a map too: the product must be in memory
                if all(i == node.id or i not in self.kernel_of or position[self.kernel_of[i].id] <
                       position[kernel.id] for i in reads):
                    chosen[kernel.id] = loop.id
                    taken.add(loop.id)
                    break
        return chosen


def _padding(node: Node, guards: tuple[Guard, ...]) -> Padding:
    return Padding(guards, get_op(node.op).fill(node), node.type.dtype)


def _is_copy_loop(node: Node) -> bool:
    """An element-moving op that is not a view: where it must exist in memory, a loop copies it."""
    op = get_op(node.op)
    return op.index_map is not None and not op.view


def _is_swap(node: Node) -> bool:
    return node.op == "transpose" and tuple(node.attrs["axes"]) == SWAP


def _foldable_into_gemm(graph: Graph, node: Node, product: Node) -> bool:
    """A 2-D transpose that a matrix product reads as a matrix operand can be read swapped instead."""
    if not _is_swap(node):
        return False
    a, b = (graph.node(i).type for i in product.inputs)
    as_b = product.inputs[1] == node.id
    return (a.rank <= 2 and b.rank <= 2) or (as_b and a.rank > 2 and product.inputs[0] != node.id)
