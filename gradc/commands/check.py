"""gradc check FILE: parse and check a model, print its summary table."""

from __future__ import annotations

import argparse

from gradc.compiler.summary import format_summary, summarize

from .common import add_dim_option, given_dims, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a .model file and print its summary",
                       description="Parse and check a model; print one row per statement or layer "
                                   "(op, output type, parameters, FLOPs) and the totals.")
    p.add_argument("file", help="the .model file")
    add_dim_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    spec = spec.bind(given_dims(args))
    title = f"model {spec.name} ({args.file})"
    if spec.graph.batch_symbol:
        title += f", batch dimension {spec.graph.batch_symbol}"
    if spec.length_symbols:
        title += f", symbolic length {', '.join(spec.length_symbols)}"
    print(format_summary(summarize(spec.graph), title))
    if spec.length_symbols:
        names = ", ".join(spec.length_symbols)
        print(f"({names}: bound to the data's size when a program compiles; the FLOPs and memory above count one "
              f"step of it, --dim {spec.length_symbols[0]}=SIZE counts them at a size)")
    if spec.train is not None:
        shown = ", ".join(f"{k}={v}" for k, v in spec.train.items() if v is not None)
        print(f"train: {shown}")
    return 0
