"""gradc import MODEL.onnx -o OUT.model: an ONNX model as a .model file and an .npz of its parameters."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gradc.runtime.files import atomic_write_bytes, atomic_write_text

from ..onnx_import import import_onnx


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="read an ONNX model into a .model file and its parameters",
                       description="Write an ONNX model as a readable .model file (one statement per node, in the "
                                   "language's ops) and its parameters (the initializers) as an .npz, for "
                                   "gradc run --params, gradc train --params and gradc graph. An op the language "
                                   "has no form for is named and stops the import. Needs the onnx extra.")
    p.add_argument("file", help="the .onnx file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.model", help="the .model file to write")
    p.add_argument("--params", metavar="OUT.npz", help="where the parameters go (default: OUT.npz beside it)")
    p.add_argument("--name", help="the model's name (default: the ONNX graph's)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    imported = import_onnx(args.file, args.name)
    model_path = Path(args.output)
    params_path = Path(args.params) if args.params else model_path.with_suffix(".npz")
    atomic_write_text(model_path, imported.text)
    buffer = _npz_bytes(imported.params)
    atomic_write_bytes(params_path, buffer)
    count = sum(int(v.size) for v in imported.params.values())
    print(f"wrote {model_path} ({imported.text.count(chr(10))} lines; outputs {', '.join(imported.outputs)}) and "
          f"{params_path} ({len(imported.params)} parameters, {count:,} values)")
    return 0


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
