"""gradc predict FILE --checkpoint CKPT --inputs X.npz|X.csv -o OUT.npz|OUT.csv: the model's outputs and the
predicted class; gradc predict FILE --checkpoint CKPT --prompt TEXT [--tokens K] [--sample]: a causal
language model's text, generated from a prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gradc.compiler.binding import lengths_in
from gradc.dsl.diagnostics import DataError
from gradc.runtime.execution.program import TARGET_HELP, TARGETS, Program
from gradc.runtime.files import atomic_write_text, load_npz
from gradc.runtime.training.data import as_examples, data_inputs, find_task
from gradc.runtime.training.datasets import read_csv_features
from gradc.runtime.training.fit import predicted_class
from gradc.runtime.training.tables import preview, table_columns, write_results

from ..api import load_checkpoint
from .common import describe_array, load_spec

CLASS_KEY = "class"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write a trained model's outputs for new inputs",
                       description="Run a checkpoint on raw inputs (standardized with the training run's "
                                   "statistics) and write every output, and for a classifier the predicted class "
                                   "(the class name when the training data had names, else the index), to an "
                                   ".npz file, or a .csv table when OUT ends in .csv. Inputs that no output "
                                   "needs, such as labels, may be left out. On a terminal the first rows are "
                                   "shown. With --prompt, a causal language model (tokens in, next-token scores "
                                   "out) generates text instead: greedily, or drawing each token with --sample.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint (best.npz, last.npz)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", metavar="X", help=".npz with arrays named after the inputs, or .csv with a "
                                                      "header (feature columns in order, without the label "
                                                      "column)")
    source.add_argument("--prompt", metavar="TEXT", help="generate text after TEXT: words of the training "
                                                         "data's vocabulary (or token indices) separated by "
                                                         "spaces")
    p.add_argument("-o", "--output", metavar="OUT", help="the .npz or .csv file to write (with --prompt: a text "
                                                         "file, optional)")
    p.add_argument("--tokens", type=int, default=20, metavar="K", help="with --prompt: how many tokens to "
                                                                        "generate (default 20)")
    p.add_argument("--sample", action="store_true", help="with --prompt: draw each token from "
                                                         "softmax(scores / temperature) instead of taking the "
                                                         "most likely one")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample: below 1 sharper, above 1 "
                                                                  "flatter (default 1)")
    p.add_argument("--seed", type=int, default=0, help="with --sample: the draws' seed (default 0)")
    p.add_argument("--target", choices=TARGETS, default="cpu", help=TARGET_HELP)
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.prompt is not None:
        return _generate(args)
    if args.output is None:
        raise DataError("give -o OUT: the .npz or .csv file to write the outputs to")
    spec = load_spec(args.file)
    dims = None
    if spec.length_symbols and Path(args.inputs).suffix == ".npz":  # compiled for the inputs' lengths
        dims = lengths_in(spec.graph, load_npz(args.inputs, "inputs"), args.inputs)
    program = load_checkpoint(spec, args.checkpoint, target=args.target, cache=not args.no_cache, dims=dims)
    inputs = read_inputs(args.inputs, program)
    outputs = program.predict(inputs)
    classes = predicted_class(program, outputs)
    if classes is not None:
        outputs[CLASS_KEY if CLASS_KEY not in outputs else "predicted_class"] = classes
    written = write_results(args.output, outputs, program.class_names)
    for name, value in outputs.items():
        print(f"{name}  {describe_array(value) if value.dtype.kind in 'biuf' else _describe_names(value)}")
    if sys.stdout.isatty():
        try:
            print(preview(table_columns(outputs, program.class_names)))
        except DataError:
            pass  # outputs that are not one row per example: the summary above is the preview
    print(f"wrote {args.output} ({written}: {', '.join(outputs)})")
    return 0


def _generate(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise DataError(f"--tokens {args.tokens}: generate at least 1 token")
    program = load_checkpoint(load_spec(args.file), args.checkpoint, target=args.target, cache=not args.no_cache)
    tokens = program.generate(args.prompt, args.tokens, args.sample, args.temperature, args.seed)
    text = program.words(tokens)
    print(text)
    if args.output:
        atomic_write_text(args.output, text + "\n")
        print(f"wrote {args.output}")
    return 0


def _describe_names(value: np.ndarray) -> str:
    names, counts = np.unique(value, return_counts=True)
    shown = ", ".join(f"{n} {c}" for n, c in zip(names[:8], counts[:8], strict=True))
    return f"{value.size} predictions: {shown}" + (", ..." if len(names) > 8 else "")


def read_inputs(path: str, program: Program) -> dict[str, np.ndarray]:
    if Path(path).suffix == ".csv":
        return _csv_features(path, program)
    if Path(path).suffix == ".npz":
        arrays = load_npz(path, "inputs")
        inputs = data_inputs(program.source)
        return {name: as_examples(path, name, array, inputs[name]) if name in inputs else array
                for name, array in arrays.items()}
    raise DataError(f"--inputs {path}: expected a .npz or .csv file")


def _csv_features(path: str, program: Program) -> dict[str, np.ndarray]:
    """A .csv's columns as the feature input, after checking that they are as many as its features."""
    settings = program.train_settings or {}
    task = find_task(program.source, settings.get("label"), settings.get("features"))
    if task.features is None:
        raise DataError("a .csv gives one feature input; this model has none")
    want = data_inputs(program.source)[task.features]
    if want.rank not in (1, 2) or (want.rank == 2 and not isinstance(want.shape[1], int)):
        raise DataError(f"{path}: a .csv gives one row of features per example; input '{task.features}' is "
                        f"{want}: give an .npz file instead")
    header, table = read_csv_features(path)
    width = 1 if want.rank == 1 else want.shape[1]
    if table.shape[1] != width:
        label_names = {task.label, settings.get("label")} - {None}
        hint = next((f"; column '{name}' is the label: remove it" for name in header if name in label_names), "")
        if not hint and table.shape[1] == width + 1:
            hint = "; if it still has its label column, remove it"
        raise DataError(f"{path} has {table.shape[1]} column{'s' if table.shape[1] != 1 else ''}; input "
                        f"'{task.features}' is {want}, {width} feature{'s' if width != 1 else ''} per example"
                        f"{hint}")
    return {task.features: table[:, 0] if want.rank == 1 else table}
