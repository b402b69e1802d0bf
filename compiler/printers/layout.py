"""A layered (Sugiyama-style) layout of a DAG, in pure Python, for drawing without Graphviz.

1. Layers: each node one below its deepest operand; sources just above their first consumer.
2. Edges that span several layers pass through dummy points, one per layer crossed.
3. Order within layers: barycenter sweeps down and up, to reduce crossings.
4. Coordinates: nodes pulled toward the mean position of their neighbours, then pushed apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import networkx as nx

LAYER_GAP = 86.0
TOP = 70.0  # room for the title and legend
NODE_GAP = 26.0
DUMMY_WIDTH = 8.0


@dataclass
class Placed:
    x: float  # centre
    y: float  # centre
    width: float
    height: float


@dataclass
class Layout:
    nodes: dict[int, Placed]
    edges: dict[tuple[int, int], list[tuple[float, float]]] = field(default_factory=dict)
    width: float = 0.0
    height: float = 0.0


def layered_layout(dag: nx.DiGraph, sizes: dict[int, tuple[float, float]], sweeps: int = 12) -> Layout:
    """Place every node of ``dag`` (sizes: node -> (width, height)); route each edge as a polyline."""
    layer: dict[object, int] = {}
    for node in nx.lexicographical_topological_sort(dag):
        layer[node] = max((layer[p] + 1 for p in dag.predecessors(node)), default=0)
    for node in dag.nodes:  # sources sit just above their first consumer, not all at the top
        if dag.in_degree(node) == 0 and dag.out_degree(node) > 0:
            layer[node] = min(layer[s] for s in dag.successors(node)) - 1

    # Split long edges with dummy vertices so every edge joins adjacent layers.
    chains: dict[tuple[int, int], list[object]] = {}
    work = nx.DiGraph()
    work.add_nodes_from(dag.nodes)
    for u, v in dag.edges:
        chain: list[object] = [u]
        for depth in range(layer[u] + 1, layer[v]):
            dummy = ("dummy", u, v, depth)
            layer[dummy] = depth
            chain.append(dummy)
        chain.append(v)
        nx.add_path(work, chain)
        chains[(u, v)] = chain

    depth_count = max(layer.values(), default=-1) + 1
    rows: list[list[object]] = [[] for _ in range(depth_count)]
    for node in sorted(work.nodes, key=_sort_key):
        rows[layer[node]].append(node)

    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        indices = range(1, depth_count) if downward else range(depth_count - 2, -1, -1)
        for i in indices:
            neighbour_row = rows[i - 1] if downward else rows[i + 1]
            position = {n: k for k, n in enumerate(neighbour_row)}
            current = {n: k for k, n in enumerate(rows[i])}

            def barycenter(n, position=position, current=current, downward=downward):
                near = work.predecessors(n) if downward else work.successors(n)
                ranks = [position[m] for m in near if m in position]
                return sum(ranks) / len(ranks) if ranks else current[n]

            rows[i].sort(key=barycenter)

    def width_of(n) -> float:
        return sizes[n][0] if n in sizes else DUMMY_WIDTH

    def height_of(n) -> float:
        return sizes[n][1] if n in sizes else 0.0

    x: dict[object, float] = {}
    for row in rows:
        cursor = 0.0
        for n in row:
            x[n] = cursor + width_of(n) / 2
            cursor += width_of(n) + NODE_GAP
    for _ in range(8):
        for row in rows:
            for n in row:
                near = list(work.predecessors(n)) + list(work.successors(n))
                if near:
                    x[n] = sum(x[m] for m in near) / len(near)
            _separate(row, x, width_of)

    left = min((x[n] - width_of(n) / 2 for n in x), default=0.0)
    margin = 20.0
    placed = {
        n: Placed(x[n] - left + margin, TOP + layer[n] * LAYER_GAP + height_of(n) / 2,
                  width_of(n), height_of(n))
        for n in dag.nodes
    }
    edges = {}
    for (u, v), chain in chains.items():
        points = [(placed[u].x, placed[u].y + placed[u].height / 2)]
        for dummy in chain[1:-1]:
            points.append((x[dummy] - left + margin, TOP + layer[dummy] * LAYER_GAP + 18))
        points.append((placed[v].x, placed[v].y - placed[v].height / 2))
        edges[(u, v)] = points
    width = max((p.x + p.width / 2 for p in placed.values()), default=0.0) + margin
    width = max(width, max((pt[0] for pts in edges.values() for pt in pts), default=0.0) + margin)
    height = max((p.y + p.height / 2 for p in placed.values()), default=0.0) + margin
    return Layout(placed, edges, width, height)


def _sort_key(node) -> tuple:
    return (0, node, ()) if isinstance(node, int) else (1, node[1], node[1:])


def _separate(row: list, x: dict, width_of) -> None:
    """Keep the row's order and push neighbours apart to the minimum gap, centred where they wanted to be."""
    if not row:
        return
    wanted = sum(x[n] for n in row) / len(row)
    for a, b in itertools.pairwise(row):
        least = x[a] + (width_of(a) + width_of(b)) / 2 + NODE_GAP
        if x[b] < least:
            x[b] = least
    shift = wanted - sum(x[n] for n in row) / len(row)
    for n in row:
        x[n] += shift
