"""gradc run FILE: evaluate outputs and losses (and gradients with --grad) on given inputs."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gradc.dsl.diagnostics import DataError
from gradc.runtime.execution.program import TARGET_HELP, TARGETS
from gradc.runtime.files import load_npz
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.tables import write_results

from ..api import compile as compile_model
from .common import add_dim_option, bound_spec, describe_array, load_spec, parse_assignments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a model on inputs, optionally with gradients",
                       description="Evaluate every output and loss; with --grad also the gradient of the loss "
                                   "(or of the single scalar output) for every float input and parameter, "
                                   "saved as grad/<name>.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--inputs", help=".npz file with one array per model input")
    p.add_argument("-i", "--input", action="append", metavar="NAME=VALUE",
                   help="an input given inline: a number or comma-separated numbers (repeatable)")
    p.add_argument("--params", metavar="P", help=".npz file with every parameter, or a checkpoint (best.npz, "
                                                 "last.npz: its parameters; inputs are not standardized, as "
                                                 "predict does) (default: initialize from --seed)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed for parameter initialization (default 0)")
    p.add_argument("--grad", action="store_true", help="also compute gradients")
    p.add_argument("--target", choices=TARGETS, default="cpu",
                   help=TARGET_HELP)
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    add_dim_option(p)
    p.add_argument("-o", "--output", help="write every result to this .npz file, or a .csv table (one row per "
                                          "example) when it ends in .csv")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    inputs = load_npz(args.inputs, "inputs") if args.inputs else {}
    inputs.update(parse_assignments(args.input))
    params, checkpoint = read_params(args.params) if args.params else (None, None)
    spec = bound_spec(spec, args, inputs)  # compiled for the inputs' lengths
    try:
        program = compile_model(spec, target=args.target, seed=args.seed, params=params, cache=not args.no_cache)
    except DataError as error:
        if params is None:
            raise
        raise DataError(f"--params {args.params}: {error.message} (--params takes an .npz of arrays named after "
                        "the parameters, or a checkpoint written by gradc train)") from None
    if checkpoint is not None:
        checkpoint.check_spec(program.spec_graph, args.params)  # the same model, or a clear refusal
        program.set_params(checkpoint.params)
    results = program.run(inputs, grad=args.grad)
    width = max(len(k) for k in results) if results else 0
    for key, value in results.items():
        print(f"{key:<{width}}  {describe_array(value)}")
    if args.output:
        written = write_results(args.output, results)
        print(f"wrote {args.output} ({written}, {len(results)} arrays)")
    return 0


def read_params(path: str) -> tuple[dict[str, np.ndarray] | None, Checkpoint | None]:
    """Parameters from an .npz of arrays named after them, or a checkpoint (whose ``param/...`` entries the
    program takes once the checkpoint is known to be of the same model)."""
    arrays = load_npz(path, "parameters")
    if "meta" not in arrays:
        return arrays, None
    checkpoint = Checkpoint.load(path)
    print(f"using the parameters of checkpoint {path} (epoch {checkpoint.meta.get('epoch', 0)}); inputs are used "
          "as given, not standardized as gradc predict does", file=sys.stderr)
    return None, checkpoint


def seed_value(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value
