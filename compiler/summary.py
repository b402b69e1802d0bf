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
    """One row per statement or layer, in the order of the graph. A block's use is a row of its own, with the
    totals of everything in it, and its layers are indented under it (nested blocks further in)."""
    groups: dict[str, list] = {}
    for node in sorted(graph.nodes(), key=lambda n: n.id):
        if node.op == "const" or node.origin is None:
            continue
        groups.setdefault(node.origin, []).append(node)
    uses = {prefix for origin in groups for prefix in _block_prefixes(origin)}
    rows = []
    shown: set[str] = set()
    total_params = param_bytes = total_flops = activation_bytes = 0
    for origin, nodes in groups.items():
        for prefix in _block_prefixes(origin) + ([origin] if origin in uses else []):
            if prefix not in shown:
                shown.add(prefix)
                inside = [n for o, ns in groups.items() if o == prefix or o.startswith(prefix + ".") for n in ns]
                rows.append(_row(graph, prefix, inside, _depth(prefix, uses)))
        params = [n for n in nodes if n.op == "param"]
        computed = [n for n in nodes if n.op not in SOURCE_OPS]
        for n in computed:
            if graph.batch_symbol is None or graph.batch_symbol in n.type.shape:
                activation_bytes += n.type.numel() * n.type.numpy_dtype().itemsize
        total_params += sum(p.type.numel() for p in params)
        param_bytes += sum(p.type.numel() * p.type.numpy_dtype().itemsize for p in params)
        total_flops += _flops(graph, computed)
        if origin in uses:
            continue  # the block's own ops (its return) are in its row
        depth = _depth(origin, uses)
        rows.append(_row(graph, origin, nodes, depth))
        if computed:  # a layer: list the parameters it created, by name
            pad = "  " * (depth + 1)
            rows.extend(Row(f"{pad}{p.name}", "param", format_type(p.type.shape, p.type.dtype), p.type.numel(), 0)
                        for p in params)
    return Summary(rows, total_params, param_bytes, total_flops, activation_bytes)


def block_uses(graph: Graph) -> dict[str, list[int]]:
    """Each use of a block (``logits.residual_mlp2``) and the nodes in it (nested uses' nodes too), outer uses
    before the uses inside them."""
    origins = {n.origin for n in graph.nodes() if n.origin is not None}
    uses = sorted({p for o in origins for p in _block_prefixes(o)}, key=lambda p: (p.count("."), p))
    members: dict[str, list[int]] = {p: [] for p in uses}
    for node in graph.nodes():
        for prefix in [*_block_prefixes(node.origin or ""), node.origin]:
            if prefix in members:
                members[prefix].append(node.id)
    return members


def _block_prefixes(origin: str) -> list[str]:
    """The block uses ``origin`` is inside: ``logits.res1.dense1`` is in ``logits.res1`` (the first part is a
    statement, the last the layer itself)."""
    parts = origin.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts))]


def _depth(origin: str, uses: set[str]) -> int:
    return sum(1 for prefix in _block_prefixes(origin) if prefix in uses)


def _flops(graph: Graph, computed: list) -> int:
    return sum(get_op(n.op).count_flops([graph.node(i).type for i in n.inputs], n.type, n.attrs) for n in computed)


def _row(graph: Graph, origin: str, nodes: list, depth: int) -> Row:
    params = [n for n in nodes if n.op == "param"]
    computed = [n for n in nodes if n.op not in SOURCE_OPS]
    result = max(computed, key=lambda n: n.id) if computed else nodes[-1]
    return Row("  " * depth + origin, _row_op(origin, result), format_type(result.type.shape, result.type.dtype),
               sum(p.type.numel() for p in params), _flops(graph, computed))


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
