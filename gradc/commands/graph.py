"""gradc graph FILE --stage S --format F: print or write the graph at any stage of the pipeline."""

from __future__ import annotations

import argparse
import sys

from gradc.compiler.driver import PIPELINE, STAGE_NAMES, TRAINING_STAGE_NAMES, prepare, prepare_training
from gradc.compiler.printers import FORMATS
from gradc.dsl.diagnostics import GradcError
from gradc.dsl.train_schema import default_settings
from gradc.runtime.files import atomic_write_text

from .common import add_dim_option, bound_spec, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    stages = "; ".join(f"{s.name}: {s.doc}" for s in PIPELINE)
    p = sub.add_parser("graph", help="show the graph at a stage (text, json, dot, svg)",
                       description=f"Show the graph after a stage. parsed: the front end's graph; {stages}; "
                                   "optimized: the end of the pipeline.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--stage", choices=TRAINING_STAGE_NAMES, default="optimized")
    p.add_argument("--train", action="store_true",
                   help="the training graph: stages train-mode (dropout becomes x * mask) and weight-decay "
                        "(the train block's weight_decay) run before the pipeline, clip-norm (its clip_norm) "
                        "right after autodiff")
    p.add_argument("--data-parallel", action="store_true",
                   help="with --train: the graph one rank of a data-parallel run (gradc train --workers) trains "
                        "with: its objective scaled by its share of the batch (input world.share), batchnorm's "
                        "batch statistics summed over the ranks (ranks_sum)")
    p.add_argument("--format", choices=tuple(FORMATS), default="text")
    p.add_argument("-o", "--output", help="write here instead of standard output")
    add_dim_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    if args.stage != "parsed" or args.dim:  # the parsed graph may keep a symbolic length; the passes need sizes
        spec = bound_spec(spec, args)
    if args.train:
        settings = spec.train or default_settings()
        clip = 0.0 if args.data_parallel else settings["clip_norm"]  # a rank clips the summed gradients
        graph = prepare_training(spec.graph, settings["weight_decay"], args.stage, clip, args.data_parallel)
    elif args.data_parallel:
        raise GradcError("--data-parallel shows a training graph: add --train")
    elif args.stage not in STAGE_NAMES:
        raise GradcError(f"stage {args.stage} is a stage of the training graph: add --train")
    else:
        graph = prepare(spec.graph, args.stage)
    text = FORMATS[args.format](graph, args.stage)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output} ({args.format}, stage {args.stage}, {len(graph)} nodes)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
