"""gradc cache info | clear: the on-disk cache of compiled programs."""

from __future__ import annotations

import argparse
import os
import sys

from gradc.dsl.diagnostics import format_diagnostic
from gradc.runtime.cache_dirs import UnsafeCacheError, check_private
from gradc.runtime.execution.compile_cache import CACHE_ENV, cache_entries, cache_root, cache_size, clear_cache


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="show or clear the compile cache",
                       description=f"The compile cache lives in {cache_root()} (set {CACHE_ENV} to move it).")
    p.add_argument("action", choices=("info", "clear"))
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "clear":
        removed = clear_cache()
        print(f"removed {removed} cached program(s) from {cache_root()}")
        return 0
    entries = cache_entries()
    root = cache_root()
    print(f"cache: {root}")
    if os.path.lexists(root):
        try:
            check_private(root)
        except UnsafeCacheError as error:
            print(format_diagnostic("warning", error.message, None, None), file=sys.stderr)
    print(f"programs: {len(entries)}, {cache_size(entries) / 1024:.1f} KiB")
    return 0
