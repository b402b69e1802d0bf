"""gradc check FILE: parse and check a model, print its summary table."""

from __future__ import annotations

import argparse

from gradc.compiler.summary import format_summary, summarize

from .common import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a .model file and print its summary",
                       description="Parse and check a model; print one row per statement or layer "
                                   "(op, output type, parameters, FLOPs) and the totals.")
    p.add_argument("file", help="the .model file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    title = f"model {spec.name} ({args.file})"
    if spec.graph.batch_symbol:
        title += f", batch dimension {spec.graph.batch_symbol}"
    print(format_summary(summarize(spec.graph), title))
    if spec.train is not None:
        shown = ", ".join(f"{k}={v}" for k, v in spec.train.items() if v is not None)
        print(f"train: {shown}")
    return 0
