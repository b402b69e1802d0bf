"""gradc eval FILE --checkpoint CKPT: loss and metrics on the test split, with a confusion matrix."""

from __future__ import annotations

import argparse
import json

from gradc.runtime.execution.program import TARGET_HELP, TARGETS
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.fit import data_lengths, trained_settings

from ..api import load_checkpoint
from .common import load_spec
from .train import add_setting_options, resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on the test split",
                       description="Loss and metrics of a trained checkpoint on a split of the data (the test "
                                   "split by default; the split is the training run's, fixed by its seed), and "
                                   "the confusion matrix for classification.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint (best.npz, last.npz)")
    p.add_argument("--split", choices=("test", "validation", "train", "all"), default="test")
    add_setting_options(p, ("data", "label", "seed", "validation", "test"))
    p.add_argument("--target", choices=TARGETS, default="cpu", help=TARGET_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file, show_warnings=not args.json)
    dims = None
    if spec.length_symbols:  # compiled for the length of the data it is evaluated on
        settings, _ = resolve(spec, args, base=trained_settings(Checkpoint.load(args.checkpoint)))
        dims = data_lengths(spec.graph, None, settings)
    program = load_checkpoint(spec, args.checkpoint, target=args.target, cache=not args.no_cache, dims=dims)
    settings, _ = resolve(spec, args, base=program.train_settings)  # the checkpoint's data, split and seed
    program.train_settings = settings
    result = program.evaluate(None, split=args.split)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(f"{spec.name} on the {result.split} split of {settings['data']} ({result.count} examples)")
    for key, value in {"loss": result.loss, **result.metrics}.items():
        print(f"  {key:<9} {value:.4f}")
    if result.confusion is not None:
        print(format_confusion(result.confusion, result.class_names))
    return 0


def format_confusion(matrix, class_names) -> str:
    names = [str(c) for c in (class_names or range(len(matrix)))]
    width = max(5, *(len(n) for n in names), len(str(matrix.max())))
    lines = ["confusion matrix (rows: true class, columns: predicted)",
             " " * (width + 2) + " ".join(f"{n[:width]:>{width}}" for n in names)]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"  {name[:width]:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
