"""gradc gradcheck FILE: analytic gradients against central finite differences, in float64."""

from __future__ import annotations

import argparse

from gradc.runtime.execution.gradcheck import DEFAULT_TOLERANCE, gradcheck
from gradc.runtime.files import load_npz

from .common import add_dim_option, bound_spec, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check gradients against finite differences (float64)",
                       description="Compare the analytic gradient of every parameter and float input with "
                                   "central finite differences in float64; exit 1 above the tolerance.")
    p.add_argument("file", help="the .model file")
    p.add_argument("--inputs", help=".npz inputs (default: random, labels drawn in range)")
    p.add_argument("--params", help=".npz parameters (default: initial values plus small noise)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4, help="batch size of random inputs (default 4)")
    p.add_argument("--max-elements", type=int, default=64,
                   help="entries checked per tensor, chosen at random beyond this (default 64)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    add_dim_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    inputs = load_npz(args.inputs, "inputs") if args.inputs else None
    spec = bound_spec(spec, args, inputs, args.inputs)
    params = load_npz(args.params, "parameters") if args.params else None
    reports = gradcheck(spec.graph, inputs, params, seed=args.seed, batch=args.batch,
                        max_elements=args.max_elements)
    width = max([len(r.name) for r in reports] + [6])
    print(f"{'tensor':<{width}}  {'kind':<5}  {'checked':>9}  {'max rel error':>13}  {'max abs error':>13}  result")
    failed = 0
    for r in reports:
        ok = r.passed(args.tolerance)
        failed += not ok
        print(f"{r.name:<{width}}  {r.kind:<5}  {f'{r.checked}/{r.size}':>9}  {r.max_error:>13.3e}  "
              f"{r.max_abs_error:>13.3e}  {'ok' if ok else 'FAIL'}")
    verdict = "passed" if not failed else f"FAILED for {failed} tensor(s)"
    print(f"gradcheck {verdict} (tolerance {args.tolerance:g})")
    return 0 if not failed else 1
