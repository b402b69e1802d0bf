"""The model summary that ``gradc check`` prints: one row per statement or layer, then totals.

Everything is computed from the graph, without running it: output types, parameter counts, FLOPs per
example (forward pass; one per element for elementwise ops, 2mnk for a matrix product) and the memory the
forward activations take per example (the batch dimension set to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import SOURCE_OPS, Graph
from .ops.registry import get_op
from .types import format_type


@dataclass(frozen=True)
class Row:
    name: str
    op: str
    type: str
    params: int
    flops: int


@dataclass(frozen=True)
class Summary:
    rows: list[Row]
    params: int
    param_bytes: int
    flops: int
    activation_bytes: int


def summarize(graph: Graph) -> Summary:
    groups: dict[str, list] = {}
    for node in sorted(graph.nodes(), key=lambda n: n.id):
        if node.op == "const" or node.origin is None:
            continue
        groups.setdefault(node.origin, []).append(node)
    rows = []
    total_params = param_bytes = total_flops = activation_bytes = 0
    for origin, nodes in groups.items():
        params = [n for n in nodes if n.op == "param"]
        computed = [n for n in nodes if n.op not in SOURCE_OPS]
        result = computed[-1] if computed else nodes[-1]
        n_params = sum(p.type.numel() for p in params)
        flops = 0
        for n in computed:
            in_types = [graph.node(i).type for i in n.inputs]
            flops += get_op(n.op).count_flops(in_types, n.type, n.attrs)
            if graph.batch_symbol is None or graph.batch_symbol in n.type.shape:
                activation_bytes += n.type.numel() * n.type.numpy_dtype().itemsize
        rows.append(Row(origin, _row_op(origin, result), format_type(result.type.shape, result.type.dtype),
                        n_params, flops))
        if computed:  # a layer: list the parameters it created, by name
            rows.extend(Row(f"  {p.name}", "param", format_type(p.type.shape, p.type.dtype), p.type.numel(), 0)
                        for p in params)
        total_params += n_params
        param_bytes += sum(p.type.numel() * p.type.numpy_dtype().itemsize for p in params)
        total_flops += flops
    return Summary(rows, total_params, param_bytes, total_flops, activation_bytes)


def _row_op(origin: str, result) -> str:
    """A layer row (``logits.dense2``) shows the layer; a statement row shows the op that computes it."""
    if "." in origin:
        stage = origin.rsplit(".", 1)[1]
        return stage.rstrip("0123456789")
    return result.op


def format_summary(summary: Summary, title: str) -> str:
    widths = [max(4, *(len(r.name) for r in summary.rows)), max(2, *(len(r.op) for r in summary.rows)),
              max(6, *(len(r.type) for r in summary.rows))] if summary.rows else [4, 2, 6]
    header = f"{'name':<{widths[0]}}  {'op':<{widths[1]}}  {'output':<{widths[2]}}  {'params':>10}  {'FLOPs/ex':>10}"
    lines = [title, header, "-" * len(header)]
    for r in summary.rows:
        lines.append(f"{r.name:<{widths[0]}}  {r.op:<{widths[1]}}  {r.type:<{widths[2]}}  {r.params:>10,}  "
                     f"{r.flops:>10,}")
    lines.append("-" * len(header))
    lines.append(f"parameters: {summary.params:,} ({_bytes(summary.param_bytes)})")
    lines.append(f"FLOPs per example (forward): {summary.flops:,}")
    lines.append(f"activation memory per example (forward): {_bytes(summary.activation_bytes)}")
    return "\n".join(lines)


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"
