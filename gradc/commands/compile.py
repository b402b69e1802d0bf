"""gradc compile FILE: generate and compile a model's program; show its kernels, compile time and cache use."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradc.compiler.printers.text import describe_kernel
from gradc.runtime.backends import COMPILED_TARGETS
from gradc.runtime.files import atomic_write_text

from ..api import compile as compile_model
from .common import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model for a target and show the kernels",
                       description="Generate the program for a target, compile its entry points (forward, "
                                   "gradients, train_sgd; the other optimizers' steps compile on first use), and "
                                   "report the kernels, the compile time and whether the on-disk cache was hit.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--target", choices=COMPILED_TARGETS, default="cpu",
                   help="cpu (Numba, default) or cuda (numba-cuda kernels; NUMBA_ENABLE_CUDASIM=1 without a GPU)")
    p.add_argument("--emit", metavar="DIR", help="write the generated source into DIR")
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.add_argument("-v", "--verbose", action="store_true", help="say why the cache missed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    spec = load_spec(args.file)
    program = compile_model(spec, target=args.target, cache=not args.no_cache)
    backend = program.backend
    report = backend.compile()
    total = time.perf_counter() - start
    graph = backend.graph
    print(f"model {spec.name}: {len(graph.kernels)} kernels, target {args.target}")
    for kernel in graph.kernels:
        print(f"  {describe_kernel(graph, kernel)}")
    print(f"entry points: {', '.join(backend.lowered.entry_points)}")
    state = "off" if args.no_cache else {True: "hit", False: "miss", None: "n/a"}[report.cache_hit]
    print(f"compile time: {report.seconds:.2f} s (cache {state}); {total:.2f} s in all")
    if args.verbose:
        print(f"cache entry: {report.directory}")
        for reason in report.reasons:
            print(f"cache miss: {reason}")
    if args.emit:
        out = Path(args.emit)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{spec.name}_{args.target}.py"
        atomic_write_text(path, backend.lowered.source)
        print(f"wrote {path}", file=sys.stderr)
    return 0
