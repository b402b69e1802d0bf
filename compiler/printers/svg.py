"""SVG drawings of a graph. Graphviz's ``dot`` renders the DOT form when it is installed; otherwise the
graph is laid out in Python (:mod:`layout`) and drawn here, with the same colours and labels."""

from __future__ import annotations

import shutil
import subprocess
from html import escape

from ..graph import Graph
from ..summary import block_uses
from .common import KIND_COLORS
from .dot import edge_label, node_label, to_dot
from .layout import layered_layout

CHAR_WIDTH = 6.6
NODE_HEIGHT = 38.0
LEGEND = ("input", "param", "constant", "intermediate", "output", "loss", "gradient")


def to_svg(graph: Graph, stage: str = "", use_graphviz: bool | None = None) -> str:
    """Draw the graph. ``use_graphviz=None`` uses Graphviz when the ``dot`` program is on the PATH."""
    dot_program = shutil.which("dot")
    if use_graphviz is None:
        use_graphviz = dot_program is not None
    if use_graphviz and dot_program is not None:
        done = subprocess.run([dot_program, "-Tsvg"], input=to_dot(graph, stage), capture_output=True,
                              text=True, check=False, timeout=120)
        if done.returncode == 0:
            return done.stdout
        raise RuntimeError(f"Graphviz dot failed: {done.stderr.strip()}")
    return draw_svg(graph, stage)


BODY_GAP = 30.0  # between a drawing and the panel of a scan's body below it


def draw_svg(graph: Graph, stage: str = "") -> str:
    """The graph laid out in Python; each scan's body drawn below it in a dashed panel of its own (nested
    bodies below theirs), joined to its scan by a dashed line."""
    main, width, height, places = _drawing(graph, 0.0, 0.0)
    title = escape(graph.model_name + (f" ({stage})" if stage else ""))
    panels: list[str] = []
    pending = [(node, places[node.id]) for node in graph.nodes() if node.op == "scan"]
    while pending:
        scan, anchor = pending.pop(0)
        body = scan.attrs["body"]
        top = height + BODY_GAP
        drawn, body_width, body_height, body_places = _drawing(body, 14.0, top - 40.0)
        steps = f"{scan.attrs['length']} steps" + (", reversed" if scan.attrs["reverse"] else "")
        bottom = body_height + 8
        panels.append(f'<rect class="body" x="6" y="{top:.1f}" width="{body_width + 8:.1f}" '
                      f'height="{bottom - top:.1f}" rx="10" fill="none" stroke="#2b8cbe" '
                      'stroke-dasharray="6,3" stroke-width="1.2"/>')
        panels.append(f'<text x="14" y="{top + 14:.1f}" font-size="11" fill="#2b8cbe">'
                      f'body of %{scan.id} (scan, {escape(steps)})</text>')
        panels.append(f'<path d="M {anchor.x:.1f} {anchor.y + anchor.height / 2:.1f} L 14 {top:.1f}" fill="none" '
                      'stroke="#2b8cbe" stroke-dasharray="4,3"/>')
        panels.extend(drawn)
        width, height = max(width, body_width + 14), bottom
        pending.extend((node, body_places[node.id]) for node in body.nodes() if node.op == "scan")
    width = max(width, 20 + 84 * len(LEGEND))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height + 10:.0f}" '
        f'viewBox="0 0 {width:.0f} {height + 10:.0f}" font-family="Helvetica, Arial, sans-serif">',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" "
        "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/>"
        "</marker></defs>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="20" y="22" font-size="14" font-weight="bold">{title}</text>',
        *_legend(), *main, *panels, "</svg>",
    ]
    return "\n".join(out) + "\n"


def _drawing(graph: Graph, dx: float, dy: float) -> tuple[list[str], float, float, dict]:
    """The graph's boxes, edges and nodes, laid out and moved by (dx, dy); the right and bottom edges of the
    drawing and where each node went."""
    labels = {node.id: node_label(graph, node) for node in graph.nodes()}
    sizes = {
        node_id: (max(len(title), len(subtitle)) * CHAR_WIDTH + 22, NODE_HEIGHT)
        for node_id, (title, subtitle) in labels.items()
    }
    layout = layered_layout(graph.dag, sizes)
    for place in layout.nodes.values():
        place.x, place.y = place.x + dx, place.y + dy
    layout.edges = {edge: [(px + dx, py + dy) for px, py in points] for edge, points in layout.edges.items()}
    out = [*_block_boxes(graph, layout), *_kernel_boxes(graph, layout)]
    for (u, _v), points in layout.edges.items():
        path = "M " + " L ".join(f"{px:.1f} {py:.1f}" for px, py in points)
        out.append(f'<path d="{path}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>')
        (x0, y0), (x1, y1) = points[0], points[1]
        label = escape(edge_label(graph.node(u)))
        out.append(f'<text x="{(x0 + x1) / 2 + 4:.1f}" y="{(y0 + y1) / 2 + 3:.1f}" font-size="9" '
                   f'fill="#444">{label}</text>')
    for node_id, place in layout.nodes.items():
        kind = graph.kind(node_id)
        color = KIND_COLORS[kind]
        x, y = place.x - place.width / 2, place.y - place.height / 2
        if kind == "constant":
            out.append(f'<ellipse cx="{place.x:.1f}" cy="{place.y:.1f}" rx="{place.width / 2:.1f}" '
                       f'ry="{place.height / 2:.1f}" fill="{color}" stroke="#888"/>')
        else:
            out.append(f'<rect class="node {kind}" x="{x:.1f}" y="{y:.1f}" width="{place.width:.1f}" '
                       f'height="{place.height:.1f}" rx="7" fill="{color}" stroke="#333"/>')
        if kind == "param":
            out.append(f'<rect x="{x + 3:.1f}" y="{y + 3:.1f}" width="{place.width - 6:.1f}" '
                       f'height="{place.height - 6:.1f}" rx="5" fill="none" stroke="#333"/>')
        title, subtitle = labels[node_id]
        out.append(f'<text x="{place.x:.1f}" y="{place.y - 3:.1f}" font-size="11" text-anchor="middle" '
                   f'font-weight="bold">{escape(title)}</text>')
        out.append(f'<text x="{place.x:.1f}" y="{place.y + 11:.1f}" font-size="9" text-anchor="middle" '
                   f'fill="#222">{escape(subtitle)}</text>')
    right = max((p.x + p.width / 2 for p in layout.nodes.values()), default=dx) + 10
    bottom = max((p.y + p.height / 2 for p in layout.nodes.values()), default=dy) + 10
    return out, max(right, layout.width + dx), max(bottom, layout.height + dy), layout.nodes


def _block_boxes(graph: Graph, layout) -> list[str]:
    """Before fusion, a labelled box around the nodes of each use of a block (a nested use inside, with a
    smaller margin)."""
    if graph.kernels is not None:
        return []
    boxes = []
    for use, members in block_uses(graph).items():
        places = [layout.nodes[n] for n in members if n in layout.nodes]
        if not places:
            continue
        margin = max(4, 16 - 4 * use.count("."))
        left = min(p.x - p.width / 2 for p in places) - margin
        right = max(p.x + p.width / 2 for p in places) + margin
        top = min(p.y - p.height / 2 for p in places) - margin - 8
        bottom = max(p.y + p.height / 2 for p in places) + margin
        boxes.append(f'<rect class="block" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                     f'height="{bottom - top:.1f}" rx="10" fill="none" stroke="#2c7fb8" stroke-width="1.2"/>')
        boxes.append(f'<text x="{left + 6:.1f}" y="{top + 11:.1f}" font-size="10" fill="#2c7fb8">'
                     f'{escape(use)}</text>')
    return boxes


def _kernel_boxes(graph: Graph, layout) -> list[str]:
    """A dashed box around the nodes of each kernel of a fused graph, labelled with its id and kind."""
    boxes = []
    for kernel in graph.kernels or ():
        places = [layout.nodes[n] for n in kernel.nodes if n in layout.nodes]
        if not places:
            continue
        left = min(p.x - p.width / 2 for p in places) - 8
        right = max(p.x + p.width / 2 for p in places) + 8
        top = min(p.y - p.height / 2 for p in places) - 14
        bottom = max(p.y + p.height / 2 for p in places) + 6
        boxes.append(f'<rect class="kernel" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                     f'height="{bottom - top:.1f}" rx="9" fill="#f2f0f7" stroke="#6a51a3" stroke-dasharray="5,3"/>')
        boxes.append(f'<text x="{left + 6:.1f}" y="{top + 10:.1f}" font-size="9" fill="#6a51a3">'
                     f'k{kernel.id} {kernel.kind}</text>')
    return boxes


def _legend() -> list[str]:
    items = []
    for k, kind in enumerate(LEGEND):
        lx, ly = 20 + k * 84, 32
        items.append(f'<rect x="{lx:.0f}" y="{ly}" width="12" height="12" rx="2" fill="{KIND_COLORS[kind]}" '
                     f'stroke="#333"/>')
        items.append(f'<text x="{lx + 16:.0f}" y="{ly + 10}" font-size="10">{kind}</text>')
    return items
