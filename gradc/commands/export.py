"""gradc export FILE [--checkpoint CKPT] -o OUT.onnx: the model's inference graph as an ONNX model."""

from __future__ import annotations

import argparse

from ..api import compile as compile_model
from ..api import export, load_checkpoint
from .common import add_dim_option, bound_spec, given_dims, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the model as ONNX (onnxruntime, Netron)",
                       description="Write the inference graph as an ONNX model (opset 18, the batch dimension "
                                   "symbolic, names from the .model file): the outputs (or, for a model with "
                                   "only a loss, its prediction operand), dropout off, batchnorm on its running "
                                   "statistics, the checkpoint's parameters, and the training data's "
                                   "standardization as the first nodes. Needs the onnx extra.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="a checkpoint (best.npz, last.npz); without one, the initialized parameters and no "
                        "standardization")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the ONNX model")
    p.add_argument("--seed", type=int, default=0, help="the initialization's seed, without a checkpoint")
    add_dim_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    if args.checkpoint:
        program = load_checkpoint(spec, args.checkpoint, dims=given_dims(args) or None)
    else:
        program = compile_model(bound_spec(spec, args), seed=args.seed)
    outputs = export(program, args.output)
    import onnx  # (export has checked it is there)

    model = onnx.load(args.output)
    onnx.checker.check_model(model, full_check=True)
    inputs = ", ".join(f"{v.name} {program.source.node(program.source.inputs()[v.name]).type}"
                       for v in model.graph.input)
    whose = f"the parameters of {args.checkpoint}" if args.checkpoint else f"initialized parameters (seed {args.seed})"
    scaled = "; inputs standardized as in training" if program.scaling is not None else ""
    print(f"wrote {args.output}: ONNX opset 18, {len(model.graph.node)} nodes, inputs {inputs}; outputs "
          f"{', '.join(outputs)}; {whose}{scaled}; onnx.checker accepts it")
    return 0
