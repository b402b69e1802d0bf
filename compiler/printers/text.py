"""The text form: one line per node in topological order, ``%7: f32[N,128] = relu(%6)    # line 5``.

Node ids are stable across passes, so two stages of the same model diff cleanly.
"""

from __future__ import annotations

from ..graph import Graph
from ..types import format_shape
from .common import format_attrs, interface_names, node_type


def to_text(graph: Graph, stage: str = "") -> str:
    header = f"# model {graph.model_name}" + (f", stage {stage}" if stage else "")
    if graph.batch_symbol:
        header += f", batch dimension {graph.batch_symbol}"
    if graph.length_symbols:
        header += f", symbolic length {', '.join(graph.length_symbols)}"
    lines = [header]
    names = interface_names(graph)
    kernel_of = graph.kernel_of()
    for node in graph.nodes():
        args = [f"%{i}" for i in node.inputs]
        attrs = format_attrs(node)
        if node.op in ("input", "param", "const"):
            rhs = f"{node.op} {attrs}"
        else:
            rhs = f"{node.op}({', '.join(args + ([attrs] if attrs else []))})"
        comment = []
        if node.id in kernel_of:
            comment.append(f"k{kernel_of[node.id]}")
        if node.line is not None:
            comment.append(f"line {node.line}")
        carried = names.get(node.id, [])
        carried_names = {entry.split(" ", 1)[-1] for entry in carried}
        if node.name and node.op not in ("input", "param") and node.name not in carried_names:
            comment.append(node.name)
        comment.extend(carried)
        text = f"%{node.id}: {node_type(node)} = {rhs}"
        if comment:
            text = f"{text:<48}  # {', '.join(comment)}"
        lines.append(text.rstrip())
        body = node.attrs.get("body") if node.op == "scan" else None
        if body is not None:  # the body, indented under its scan: what runs at every step
            lines += [f"    | {line}" for line in to_text(body).splitlines()[1:]]
    for prefix, table in (("output", graph.outputs), ("loss", graph.losses)):
        for name, node_id in table.items():
            lines.append(f"{prefix} {name} = %{node_id}")
    if graph.objective is not None:
        lines.append(f"objective = %{graph.objective}")
    for name, node_id in graph.grads.items():
        lines.append(f"grad {name} = %{node_id}")
    for kernel in graph.kernels or ():
        lines.append(describe_kernel(graph, kernel))
    return "\n".join(lines) + "\n"


def describe_kernel(graph: Graph, kernel) -> str:
    ops = ", ".join(graph.node(n).op for n in kernel.nodes)
    where = f" over {format_shape(kernel.domain) or 'a scalar'}" if kernel.kind == "loop" else ""
    stores = " ".join(f"%{n}" for n in kernel.stored)
    return f"kernel k{kernel.id} {kernel.kind}{where}: {ops}; stores {stores}"
