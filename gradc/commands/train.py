"""gradc train FILE: train a model with its train block, any setting overridden from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from gradc.compiler.frontend import ModelSpec
from gradc.dsl.diagnostics import GradcError
from gradc.dsl.train_schema import (
    TRAIN_KEYS,
    default_settings,
    format_setting,
    option_name,
    setting_from_text,
    with_learning_rate,
)
from gradc.runtime.distributed.launch import launch
from gradc.runtime.distributed.world import current_world
from gradc.runtime.execution.program import TARGET_HELP, TARGETS
from gradc.runtime.files import load_npz
from gradc.runtime.training.checkpoints import Checkpoint
from gradc.runtime.training.fit import data_lengths

from ..api import compile as compile_model
from .common import load_spec

ALIASES = {"batch": ("--batch-size",)}


def add_setting_options(p: argparse.ArgumentParser, keys: tuple[str, ...] = tuple(TRAIN_KEYS)) -> None:
    """One option per train-block key (``--epochs``, ``--weight-decay``...), plus ``--lr``."""
    group = p.add_argument_group("train settings (override the train block)")
    for key in keys:
        spec = TRAIN_KEYS[key]
        group.add_argument(f"--{option_name(key)}", *ALIASES.get(key, ()), dest=f"set_{key}", metavar="VALUE",
                           help=f"{spec.doc} (default: {format_setting(spec.default)})")
    if "optimizer" in keys:
        group.add_argument("--lr", type=float, metavar="RATE", help="the optimizer's learning rate")


def resolve(spec: ModelSpec, args: argparse.Namespace, base: dict[str, Any] | None = None
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings in force (``base``, else the train block) and where each came from (default, the file,
    the command line)."""
    settings = dict(base or spec.train or default_settings())
    sources = {key: "train block" if spec.train is not None and key in spec.train_given else "default"
               for key in TRAIN_KEYS}
    for key in TRAIN_KEYS:
        text = getattr(args, f"set_{key}", None)
        if text is not None:
            settings[key] = setting_from_text(key, text)
            sources[key] = "command line"
    if getattr(args, "lr", None) is not None:
        settings = {**settings, "optimizer": with_learning_rate(settings["optimizer"], args.lr)}
        sources["optimizer"] = "command line"
    return settings, sources


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on its data",
                       description="Train with the model's train block on the compiled training step: a line per "
                                   "epoch with the losses, metrics, learning rate and time; checkpoints, "
                                   "metrics.jsonl and curves.png in runs/<model>-<timestamp>/.")
    p.add_argument("file", help="the .model file")
    add_setting_options(p)
    p.add_argument("--target", choices=TARGETS, default="cpu", help=TARGET_HELP)
    p.add_argument("--out", metavar="DIR", help="the run folder (default: runs/<model>-<timestamp>)")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (last.npz) of the same model and "
                                                     "settings")
    p.add_argument("--print-config", action="store_true", help="show the settings in force and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    p.add_argument("--log-json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("--no-cache", action="store_true", help="compile afresh, without the on-disk cache")
    p.add_argument("--params", metavar="P", help="start from these parameters: an .npz of arrays named after the "
                                                 "parameters (gradc import writes one), or a checkpoint's")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="train data-parallel on N processes of this machine, through mpiexec (the mpi extra); "
                        "across machines run 'mpiexec -n N [--hostfile H] gradc train FILE' instead")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise GradcError(f"--workers {args.workers}: give at least 1")
    if args.workers > 1 and not args.print_config:
        if current_world().distributed:
            raise GradcError("--workers starts its own ranks: give it to a plain 'gradc train', not under mpiexec")
        load_spec(args.file)  # a bad model file is reported once, here, not by every rank
        return launch(args.argv, args.workers)
    spec = load_spec(args.file)
    settings, sources = resolve(spec, args)
    if args.print_config:
        width = max(map(len, TRAIN_KEYS))
        print(f"# settings in force for {spec.name} (from {args.file})")
        print("train {")
        for key, value in settings.items():
            print(f"  {key:<{width}} = {format_setting(value):<40} # {sources[key]}")
        print("}")
        return 0
    dims = data_lengths(spec.graph, None, settings) if spec.length_symbols else None  # its data's T
    program = compile_model(spec, target=args.target, seed=settings["seed"], cache=not args.no_cache, dims=dims)
    if args.params:
        arrays = load_npz(args.params, "parameters")
        program.set_params(Checkpoint.load(args.params).params if "meta" in arrays else arrays)
    program.train_settings = settings
    program.fit(None, out=args.out, resume=args.resume, quiet=args.quiet, log_json=args.log_json)
    return 0
