"""gradc predict FILE --checkpoint CKPT --inputs X.npz|X.csv -o OUT.npz: the model's outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gradc.dsl.diagnostics import DataError
from gradc.runtime.data import data_inputs, find_task
from gradc.runtime.datasets import read_csv_features
from gradc.runtime.files import load_npz, save_npz
from gradc.runtime.program import TARGET_HELP, TARGETS

from ..api import load_checkpoint
from .common import describe_array, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write a trained model's outputs for new inputs",
                       description="Run a checkpoint on raw inputs (standardized with the training run's "
                                   "statistics) and write every output to an .npz file. Inputs that no output "
                                   "needs, such as labels, may be left out.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint (best.npz, last.npz)")
    p.add_argument("--inputs", required=True, metavar="X", help=".npz with arrays named after the inputs, or "
                                                               ".csv with a header (feature columns in order)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the .npz file to write")
    p.add_argument("--target", choices=TARGETS, default="cpu", help=TARGET_HELP)
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    program = load_checkpoint(spec, args.checkpoint, target=args.target, cache=not args.no_cache)
    inputs = read_inputs(args.inputs, program)
    outputs = program.predict(inputs)
    save_npz(args.output, outputs)
    for name, value in outputs.items():
        print(f"{name}  {describe_array(value)}")
    print(f"wrote {args.output} ({', '.join(outputs)})")
    return 0


def read_inputs(path: str, program) -> dict[str, np.ndarray]:
    if Path(path).suffix == ".csv":
        task = find_task(program.source)
        if task.features is None:
            raise DataError("a .csv gives one feature input; this model has none")
        table = read_csv_features(path)
        want = data_inputs(program.source)[task.features]
        features = table[:, 0] if want.rank == 1 and table.shape[1] == 1 else table
        return {task.features: features}
    if Path(path).suffix == ".npz":
        return load_npz(path, "inputs")
    raise DataError(f"--inputs {path}: expected a .npz or .csv file")

