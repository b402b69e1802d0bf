"""What every compiled target shares when it lowers a fused graph: the entry points and their results,
the mangled argument names, the data each result needs, number literals, and the scalar code of a fused
loop's nodes (each op's kernel template, declared once in the op registry)."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from gradc.dsl.diagnostics import GradcError

from ..graph import Graph, Node
from ..ops.registry import get_op
from ..optimizers import OPTIMIZERS, OptimizerDef

NUMPY_NAMES = {"f32": "np.float32", "f64": "np.float64", "i32": "np.int32", "i64": "np.int64"}
TRAIN_PREFIX = "train_"
DEFAULT_ENTRY_POINTS = ("forward", "gradients", "train_sgd")


class LoweringError(GradcError):
    """A graph a target cannot lower (named plainly; there is no silent fallback)."""


@dataclass(frozen=True)
class EntryPoint:
    name: str
    returns: tuple[str, ...]  # result keys: output and loss names, grad/<name>; train_* return the objective
    optimizer: OptimizerDef | None = None


@dataclass
class LoweredProgram:
    source: str
    args: tuple[str, ...]  # "input:<name>", "param:<name>", "const:<id>" in call order
    entry_points: dict[str, EntryPoint]
    const_arrays: dict[int, np.ndarray] = field(default_factory=dict)


def entry_points(graph: Graph) -> dict[str, EntryPoint]:
    """forward, gradients and, when the model has an objective and parameters, a train_<optimizer> each."""
    points = {
        "forward": EntryPoint("forward", (*graph.outputs, *graph.losses)),
        "gradients": EntryPoint("gradients", (*graph.outputs, *graph.losses, *(f"grad/{n}" for n in graph.grads))),
    }
    if graph.objective is not None and graph.params():
        for optimizer in OPTIMIZERS.values():
            name = TRAIN_PREFIX + optimizer.name
            points[name] = EntryPoint(name, ("objective",), optimizer)
    return points


def wanted_nodes(graph: Graph, point: EntryPoint) -> list[int]:
    """The node ids an entry point computes: its results, or the objective and every parameter's gradient."""
    if point.optimizer is not None:
        return [graph.objective, *(graph.grads[n] for n in graph.params())]
    table = {**graph.outputs, **graph.losses, **{f"grad/{n}": i for n, i in graph.grads.items()}}
    return [table[key] for key in point.returns]


def optimizer_args(graph: Graph, optimizer: OptimizerDef | None) -> list[str]:
    """State arrays s<k>_<j> (parameter k, state j), hyperparameters h_<name>, the step number t."""
    if optimizer is None:
        return []
    states = [f"s{k}_{j}" for k in range(len(graph.params())) for j in range(len(optimizer.state))]
    return [*states, *(f"h_{h}" for h in optimizer.hyperparameters), "t"]


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


def data_ancestors(graph: Graph, roots: list[int]) -> set[int]:
    """The nodes whose values the roots need: operands read only for their shape do not count."""
    needed, stack = set(), list(roots)
    while stack:
        node_id = stack.pop()
        if node_id in needed:
            continue
        needed.add(node_id)
        node = graph.node(node_id)
        skip = get_op(node.op).shape_only
        stack.extend(i for k, i in enumerate(node.inputs) if k not in skip)
    return needed


def literal(value: float | int | bool, dtype: str) -> str:
    """A number in generated source, typed like the value it stands for."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if dtype in ("f32", "f64"):
        return f"{NUMPY_NAMES[dtype]}({float(value)!r})"
    return f"{NUMPY_NAMES[dtype]}({int(value)})"


def broadcast_index(shape: tuple, domain: tuple, index: list[str], left: bool = False) -> list[str]:
    """The index of an operand of ``shape`` at a loop position over ``domain`` (NumPy broadcasting,
    right-aligned; ``left`` aligns it with the leading loop indices)."""
    offset = 0 if left else len(domain) - len(shape)
    return ["0" if d == 1 and domain[j + offset] != 1 else index[j + offset] for j, d in enumerate(shape)]


def scalar_code(node: Node, operand: Callable[[int, int], str], last_index: str) -> str:
    """A loop node's scalar expression: its op's template with each read operand's code, from
    ``operand(node_id, position)``, and its attributes as typed literals."""
    op = get_op(node.op)
    values = {}
    for position, (name, operand_id) in enumerate(zip(op.operands, node.inputs, strict=True)):
        if position not in op.shape_only:
            values[name] = operand(operand_id, position)
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


def kernel_comment(kernel_id: int, kind: str, nodes: list[Node]) -> str:
    """``k1 loop: add, relu, step | nodes %5 %6 %38 | lines 4``: a kernel mapped to the graph and the spec."""
    lines = sorted({n.line for n in nodes if n.line is not None})
    ops = ", ".join(n.op for n in nodes)
    ids = " ".join(f"%{n.id}" for n in nodes)
    return f"k{kernel_id} {kind}: {ops} | nodes {ids} | lines {' '.join(map(str, lines)) or '-'}"


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
