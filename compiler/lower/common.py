"""What every compiled target shares when it renders a schedule: the mangled argument names, number
literals, the scalar code of a loop's statements (each op's kernel template, declared once in the op
registry) and the import of the target's kernel library."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gradc.dsl.diagnostics import GradcError

from ..entry_points import (  # noqa: F401  (re-exported: what the targets and the driver name)
    DEFAULT_ENTRY_POINTS,
    TRAIN_PREFIX,
    EntryPoint,
    optimizer_args,
)
from ..graph import Graph, Node
from ..index_maps import Guard
from ..ops.registry import get_op
from ..schedule import GemmKernel, Literal, Load, LoopKernel, Operand, ScheduledKernel, Statement
from ..types import BOOL

NUMPY_NAMES = {"f32": "np.float32", "f64": "np.float64", "i32": "np.int32", "i64": "np.int64"}


class LoweringError(GradcError):
    """A graph a target cannot lower (named plainly; there is no silent fallback)."""


@dataclass
class LoweredProgram:
    source: str
    args: tuple[str, ...]  # "input:<name>", "param:<name>", "const:<id>" in call order
    entry_points: dict[str, EntryPoint]
    const_arrays: dict[int, np.ndarray] = field(default_factory=dict)


class ArgNames:
    """Mangled argument names: inputs, then parameters, then constant arrays."""

    def __init__(self, graph: Graph):
        self.by_node: dict[int, str] = {}  # node id -> its argument's name, in call order
        args = []
        for k, node_id in enumerate(graph.inputs().values()):
            self.by_node[node_id] = f"in{k}"
            args.append(f"input:{graph.node(node_id).name}")
        for k, node_id in enumerate(graph.params().values()):
            self.by_node[node_id] = f"p{k}"
            args.append(f"param:{graph.node(node_id).name}")
        self.const_arrays: dict[int, np.ndarray] = {}
        for node in graph.nodes():
            if node.op == "const" and node.type.shape:
                self.by_node[node.id] = f"c{node.id}"
                self.const_arrays[node.id] = np.ascontiguousarray(node.attrs["value"])
                args.append(f"const:{node.id}")
        self.args = tuple(args)
        self.positional = list(self.by_node.values())
        self.batch_source: str | None = None
        for node_id in graph.inputs().values():
            shape = graph.node(node_id).type.shape
            if graph.batch_symbol in shape:
                self.batch_source = f"{self.by_node[node_id]}.shape[{shape.index(graph.batch_symbol)}]"
                break


def literal(value: float | int | bool, dtype: str) -> str:
    """A number in generated source, typed like the value it stands for."""
    if isinstance(value, bool | np.bool_) or dtype == BOOL:  # a comparison folded to a constant
        return "True" if value else "False"
    if dtype in ("f32", "f64"):
        return f"{NUMPY_NAMES[dtype]}({float(value)!r})"
    return f"{NUMPY_NAMES[dtype]}({int(value)})"


def statement_code(statement: Statement, render: Callable[[Operand], str], last_index: str) -> str:
    """A loop statement's scalar expression: its op's template with each operand rendered by the target
    (``render``) and its attributes as typed literals. An element-moving op (a transpose materialized as a copy
    loop) is its operand, read through the map the schedule composed."""
    node = statement.node
    op = get_op(node.op)
    if op.index_map is not None:
        return render(statement.operands[0])
    values = {name: render(operand) for name, operand in zip(op.operands, statement.operands, strict=True)
              if operand is not None}
    for key, value in node.attrs.items():
        spec = op.attr_spec(key)
        if spec is not None and spec.kind == "dtype":
            values[key] = NUMPY_NAMES[value]  # one of four fixed names, never text from the model
        elif isinstance(value, int | float):
            values[key] = literal(value, node.type.dtype)
        else:
            values[key] = repr(value)
    values["i_last"] = last_index
    return op.scalar.format(**values)


def literal_code(operand: Literal) -> str:
    return literal(operand.value, operand.dtype)


def load_code(load: Load, name_of: Callable[[int], str], index: list[str],
              decided: Callable[[Guard], bool | None] | None = None) -> str:
    """A load's scalar expression, ``x0[i0, x1[i1]]``, with its paddings' guards (less those ``decided``);
    ``name_of`` names a value the kernel reads (the loaded value, and a gather's indices)."""
    element = f"{name_of(load.value)}[{load.map.render(index, name_of)}]"
    return load.guarded(element, index, lambda padding: literal(padding.fill, padding.dtype), name_of, decided)


def kernel_comment(kernel_id: int, kind: str, nodes: list[Node]) -> str:
    """``k1 loop: add, relu, step | nodes %5 %6 %38 | lines 4``: a kernel mapped to the graph and the spec."""
    lines = sorted({n.line for n in nodes if n.line is not None})
    ops = ", ".join(n.op for n in nodes)
    ids = " ".join(f"%{n.id}" for n in nodes)
    return f"k{kernel_id} {kind}: {ops} | nodes {ids} | lines {' '.join(map(str, lines)) or '-'}"


def kernel_heading(kernel: ScheduledKernel) -> str:
    """The comment above a kernel's code: ``k0 gemm: matmul | nodes %3 | lines 4 + epilogue k1 loop: ...``."""
    if isinstance(kernel, GemmKernel):
        head = kernel_comment(kernel.id, "gemm", [kernel.node])
        if kernel.epilogue is not None:
            head += f" + epilogue {kernel_comment(kernel.epilogue.id, 'loop', kernel.epilogue.nodes)}"
        return head
    return kernel_comment(kernel.id, kernel.kind, kernel.nodes)


def render_kernel(writer, kernel: ScheduledKernel, op_lowering: dict, target: str) -> None:
    """Write one scheduled kernel with a target's writer: its heading, then ``writer.gemm``, ``writer.loop``,
    or the target's entry for an op kernel (a view, a shape query)."""
    writer.put("# " + kernel_heading(kernel))
    if isinstance(kernel, GemmKernel):
        writer.gemm(kernel)
    elif isinstance(kernel, LoopKernel):
        writer.loop(kernel)
    else:
        lower = op_lowering.get(kernel.node.op)
        if lower is None:
            raise LoweringError(f"the {target} target cannot lower op '{kernel.node.op}'")
        lower(writer, kernel.node)


class ScalarConstantRefs:
    """For a target's entry-point writer (with ``g``, ``names``, ``lines`` and ``scalar_consts``): loops read a
    scalar constant as a literal, but an op kernel or the entry point's results need it as a value. ``ref``
    hands out its value name and records it; ``define_scalar_consts`` writes the definitions, in the target's
    form (``scalar_const_lines``), at the start of the function (after its ``nb = ...`` line)."""

    def ref(self, node_id: int) -> str:
        if node_id in self.names.by_node:
            return self.names.by_node[node_id]
        if self.g.node(node_id).op == "const" and node_id not in self.scalar_consts:
            self.scalar_consts.append(node_id)
        return f"v{node_id}"

    def scalar_const_lines(self, node: Node) -> list[str]:
        raise NotImplementedError

    def define_scalar_consts(self, more: Iterable[str] = ()) -> None:
        """Write the definitions, and ``more`` prologue lines of the target's own, after ``nb = ...``."""
        lines = [line for node_id in self.scalar_consts for line in self.scalar_const_lines(self.g.node(node_id))]
        at = self.lines.index("    nb = " + (self.names.batch_source or "0")) + 1
        self.lines[at:at] = [*more, *lines]


def library_imports(module: str) -> list[str]:
    """The generated program's import of its kernel library: every public function the module defines (the
    scalar helpers that op templates call, allocation and launch helpers, the optimizer routines), read from
    the module itself, so a helper added to the library is importable without editing a list."""
    library = importlib.import_module(module)
    names = sorted(name for name, value in vars(library).items()
                   if not name.startswith("_") and callable(value) and not isinstance(value, type)
                   and getattr(value, "__module__", None) == library.__name__)
    listed = textwrap.wrap(", ".join(names) + ",", 110, initial_indent="    ", subsequent_indent="    ")
    return [f"from {module} import (", *listed, ")"]


def step_range(attrs: dict) -> str:
    """The loop over a scan's steps, in the order it runs them (``range(T)``, or backwards with ``reverse``)."""
    return f"range({attrs['length'] - 1}, -1, -1)" if attrs["reverse"] else f"range({attrs['length']})"


class ScanBodies:
    """The scan bodies of a program, each rendered once as a function of its own (``scan_body<k>``): the body's
    ``forward`` entry point, taking the body's inputs (carries, the step's sequence slices, constants) and
    returning its outputs, written by the target's ``render(graph, names, entry, into)``. Every entry point that
    runs the scan calls the same function.

    ``into`` (result indices) asks for a variant that takes, before the inputs, one buffer per such result
    (``out<j>``) and computes the result in it, as the step's row of the stacked result, instead of in a new
    array copied there after the call; ``render`` returns, with the lines, the results it did write so (a
    result that is an input, a view or a product's own buffer is returned as before)."""

    def __init__(self, render: Callable[[Graph, ArgNames, object, tuple[int, ...]], tuple[list[str], frozenset]]):
        self.render = render
        self.names: dict[tuple[int, tuple[int, ...]], tuple[str, frozenset[int]]] = {}  # (id(body), into) -> ...
        self.lines: list[str] = []

    def function(self, body: Graph) -> str:
        return self.function_into(body, ())[0]

    def function_into(self, body: Graph, into: Sequence[int]) -> tuple[str, frozenset[int]]:
        """The function's name, and the results it writes into the buffers it is given."""
        key = (id(body), tuple(into))
        if key not in self.names:
            from ..driver import plan

            name = f"scan_body{len(self.names)}"
            program = plan(body)
            entry = program.entries["forward"]
            # a body runs once a step: its kernels stay sequential (no batch regions, see batch_regions.py)
            entry = replace(entry, point=replace(entry.point, name=name), regions=())
            lines, written = self.render(program.graph, ArgNames(program.graph), entry, key[1])
            self.names[key] = (name, written)
            self.lines += lines
        return self.names[key]
