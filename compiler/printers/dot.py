"""The Graphviz DOT form: inputs green, outputs and losses orange, intermediate values blue, parameters
pale green with a double border, constants grey; every edge labelled with the shape it carries."""

from __future__ import annotations

from ..graph import Graph, Node
from ..summary import block_uses
from ..types import format_shape
from .common import KIND_COLORS, format_attrs, node_type


def node_label(graph: Graph, node: Node) -> tuple[str, str]:
    """Two lines for a node: what it is, and its type."""
    kind = graph.kind(node.id)
    if node.op in ("input", "param"):
        title = f"{node.name}"
    elif node.op == "const":
        title = format_attrs(node)
    else:
        title = node.op
        names = [n for n, i in {**graph.outputs, **graph.losses}.items() if i == node.id]
        names += [f"grad/{n}" for n, i in graph.grads.items() if i == node.id]
        if names:
            title = f"{names[0]} = {node.op}"
    return title, f"%{node.id} {kind} {node_type(node)}"


def edge_label(node: Node) -> str:
    shape = format_shape(node.type.shape)
    return shape[1:-1].replace(",", "×") if shape else "scalar"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _block_clusters(uses: dict[str, list[int]], in_block: dict[str, list[str]]) -> list[str]:
    """Nested ``subgraph cluster_`` sections, one per block use, labelled with its name."""
    def emit(use: str, depth: int) -> list[str]:
        pad = "  " * depth
        out = [f"{pad}subgraph cluster_b{list(uses).index(use)} {{",
               f"{pad}  label={_quote(use)}; style=\"rounded\"; color=\"#2c7fb8\"; fontcolor=\"#2c7fb8\";"]
        out += [pad + line for line in in_block.get(use, [])]
        for inner in uses:
            if inner.startswith(use + ".") and inner.rsplit(".", 1)[0] == use:
                out += emit(inner, depth + 1)
        out.append(f"{pad}}}")
        return out

    top = [u for u in uses if not any(u.startswith(o + ".") for o in uses if o != u)]
    return [line for use in top for line in emit(use, 1)]


def to_dot(graph: Graph, stage: str = "") -> str:
    title = f"{graph.model_name}" + (f" ({stage})" if stage else "")
    lines = [
        f"digraph {_quote(graph.model_name)} {{",
        f"  label={_quote(title)}; labelloc=t; rankdir=TB; fontname=Helvetica;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=11];',
        "  edge [fontname=Helvetica, fontsize=9, color=\"#555555\"];",
    ]
    kernel_of = graph.kernel_of()
    clusters: dict[int, list[str]] = {}
    # before fusion, each use of a block is a labelled cluster (nested uses inside it); after, the kernels are
    uses = block_uses(graph) if graph.kernels is None else {}
    innermost = {node_id: use for use, members in uses.items() for node_id in members}  # outer uses come first
    in_block: dict[str, list[str]] = {}
    for node in graph.nodes():
        kind = graph.kind(node.id)
        title, subtitle = node_label(graph, node)
        extra = ", peripheries=2" if kind == "param" else ""
        extra += ", shape=ellipse" if kind == "constant" else ""
        line = (
            f"  n{node.id} [label={_quote(title)[:-1]}\\n{_quote(subtitle)[1:]}, "
            f"fillcolor={_quote(KIND_COLORS[kind])}"
            f"{extra}];"
        )
        if node.id in kernel_of:
            clusters.setdefault(kernel_of[node.id], []).append("  " + line)
        elif node.id in innermost:
            in_block.setdefault(innermost[node.id], []).append(line)
        else:
            lines.append(line)
    lines.extend(_block_clusters(uses, in_block))
    for kernel in graph.kernels or ():
        lines.append(f"  subgraph cluster_k{kernel.id} {{")
        lines.append(f"    label=\"k{kernel.id} {kernel.kind}\"; style=\"rounded,dashed\"; color=\"#6a51a3\";")
        lines.extend(clusters.get(kernel.id, []))
        lines.append("  }")
    for node in graph.nodes():
        for operand in dict.fromkeys(node.inputs):
            lines.append(f"  n{operand} -> n{node.id} [label={_quote(edge_label(graph.node(operand)))}];")
    for node in graph.nodes():
        if node.op == "scan":
            lines.extend(_body_cluster(node, f"n{node.id}_"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _body_cluster(scan: Node, prefix: str) -> list[str]:
    """A scan's body as a nested cluster (its node ids prefixed), joined to the scan by a dashed edge; nested
    scans nest again."""
    body = scan.attrs["body"]
    steps = f"{scan.attrs['length']} steps" + (", reversed" if scan.attrs["reverse"] else "")
    out = [f"  subgraph cluster_{prefix}body {{",
           f"    label={_quote(f'body of %{scan.id} (scan, {steps})')}; style=\"rounded,dashed\"; "
           "color=\"#2b8cbe\";"]
    for node in body.nodes():
        title, subtitle = node_label(body, node)
        out.append(f"    {prefix}{node.id} [label={_quote(title)[:-1]}\\n{_quote(subtitle)[1:]}, "
                   f"fillcolor={_quote(KIND_COLORS[body.kind(node.id)])}];")
    out.append("  }")
    for node in body.nodes():
        for operand in dict.fromkeys(node.inputs):
            out.append(f"  {prefix}{operand} -> {prefix}{node.id};")
        if node.op == "scan":
            out.extend(_body_cluster(node, f"{prefix}{node.id}_"))
    first = next(iter(body.outputs.values()), None)
    if first is not None:
        out.append(f"  {prefix[:-1]} -> {prefix}{first} [style=dashed, arrowhead=none, label=\"body\"];")
    return out
