"""gradc run FILE: evaluate outputs and losses (and gradients with --grad) on given inputs."""

from __future__ import annotations

import argparse

from gradc.runtime.files import load_npz, save_npz
from gradc.runtime.program import TARGET_HELP, TARGETS

from ..api import compile as compile_model
from .common import describe_array, load_spec, parse_assignments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a model on inputs, optionally with gradients",
                       description="Evaluate every output and loss; with --grad also the gradient of the loss "
                                   "(or of the single scalar output) for every float input and parameter, "
                                   "saved as grad/<name>.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--inputs", help=".npz file with one array per model input")
    p.add_argument("-i", "--input", action="append", metavar="NAME=VALUE",
                   help="an input given inline: a number or comma-separated numbers (repeatable)")
    p.add_argument("--params", help=".npz file with every parameter (default: initialize from --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for parameter initialization (default 0)")
    p.add_argument("--grad", action="store_true", help="also compute gradients")
    p.add_argument("--target", choices=TARGETS, default="cpu",
                   help=TARGET_HELP)
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.add_argument("-o", "--output", help="write every result to this .npz file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    inputs = load_npz(args.inputs, "inputs") if args.inputs else {}
    inputs.update(parse_assignments(args.input))
    params = load_npz(args.params, "parameters") if args.params else None
    program = compile_model(spec, target=args.target, seed=args.seed, params=params, cache=not args.no_cache)
    results = program.run(inputs, grad=args.grad)
    width = max(len(k) for k in results) if results else 0
    for key, value in results.items():
        print(f"{key:<{width}}  {describe_array(value)}")
    if args.output:
        save_npz(args.output, results)
        print(f"wrote {args.output} ({len(results)} arrays)")
    return 0
