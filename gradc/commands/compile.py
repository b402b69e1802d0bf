"""gradc compile FILE: generate and compile a model's program; show its kernels, compile time and cache use."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradc.compiler.driver import plan
from gradc.compiler.printers.schedule_text import describe
from gradc.compiler.printers.text import describe_kernel
from gradc.dsl.diagnostics import DataError
from gradc.runtime.execution.targets import COMPILED_TARGETS
from gradc.runtime.files import atomic_write_text, file_stem

from ..api import compile as compile_model
from .common import add_dim_option, given_dims, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model for a target and show the kernels",
                       description="Generate the program for a target, compile its entry points (forward, "
                                   "gradients, train_sgd; the other optimizers' steps compile on first use), and "
                                   "report the kernels, the compile time and whether the on-disk cache was hit.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--target", choices=COMPILED_TARGETS, default="cpu",
                   help="cpu (Numba, default) or cuda (numba-cuda kernels; NUMBA_ENABLE_CUDASIM=1 without a GPU)")
    p.add_argument("--emit", metavar="PATH",
                   help="write the generated source: into the folder PATH (made if missing) as "
                        "<model>_<target>.py, or into the file PATH if it ends in .py")
    p.add_argument("--schedule", action="store_true",
                   help="also print the schedule every target renders: per entry point, each kernel's loads and "
                        "their index maps, what it stores, GEMM calls with swapped operands and epilogues")
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.add_argument("-v", "--verbose", action="store_true", help="say why the cache missed")
    add_dim_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    spec = load_spec(args.file)
    emit_to = emitted_source_path(Path(args.emit), spec.name, args.target) if args.emit else None
    program = compile_model(spec, target=args.target, cache=not args.no_cache, dims=given_dims(args))
    backend = program.backend
    report = backend.compile()
    total = time.perf_counter() - start
    graph = backend.graph
    print(f"model {spec.name}: {len(graph.kernels)} kernels, target {args.target}")
    for kernel in graph.kernels:
        print(f"  {describe_kernel(graph, kernel)}")
    print(f"entry points: {', '.join(backend.lowered.entry_points)}")
    if args.schedule:
        print("schedule:")
        print(describe(plan(graph)).rstrip())
    state = "off" if args.no_cache else {True: "hit", False: "miss", None: "n/a"}[report.cache_hit]
    print(f"compile time: {report.seconds:.2f} s (cache {state}); {total:.2f} s in all")
    if args.verbose:
        print(f"cache entry: {report.directory}")
        for reason in report.reasons:
            print(f"cache miss: {reason}")
    if emit_to is not None:
        try:
            emit_to.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"--emit {args.emit}: cannot create the folder {emit_to.parent}: {exc.strerror}") from None
        atomic_write_text(emit_to, backend.lowered.source)
        print(f"wrote {emit_to}", file=sys.stderr)
    return 0


def emitted_source_path(emit: Path, model: str, target: str) -> Path:
    """Where ``--emit`` writes: the file itself when it ends in .py, else ``<model>_<target>.py`` in that folder,
    made if missing (a long model name is shortened to fit a file name). Checked before anything is compiled."""
    if emit.suffix == ".py" and not emit.is_dir():
        if not emit.parent.is_dir():
            raise DataError(f"--emit {emit}: folder {emit.parent} does not exist")
        return emit
    if emit.exists() and not emit.is_dir():
        raise DataError(f"--emit {emit}: it exists and is not a folder; give a folder to write "
                        f"{file_stem(model)}_{target}.py into, or a file name ending in .py")
    return emit / f"{file_stem(model)}_{target}.py"
