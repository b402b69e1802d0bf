"""Printers for every stage's graph: text (diffable), JSON, Graphviz DOT and SVG."""

from collections.abc import Callable

from ..graph import Graph
from .dot import to_dot
from .json_format import to_json
from .svg import to_svg
from .text import to_text

FORMATS: dict[str, Callable[[Graph, str], str]] = {
    "text": to_text,
    "json": to_json,
    "dot": to_dot,
    "svg": to_svg,
}

__all__ = ["FORMATS", "to_dot", "to_json", "to_svg", "to_text"]
