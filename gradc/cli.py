"""The gradc command line. Every mistake in a .model file or in the data is reported as a message (with
``file:line:col`` and a caret for model files) and exit status 1, never as a traceback."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from gradc.dsl.diagnostics import GradcError, format_error
from gradc.runtime.threads import limit_blas_threads

from . import __version__
from .commands import cache, check, compile, evaluate, gradcheck, graph, predict, run, train

COMMANDS = (check, graph, compile, run, gradcheck, train, evaluate, predict, cache)
EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 70


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradc", description="A compiler for neural networks in .model files.")
    parser.add_argument("--version", action="version", version=f"gradc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_blas_threads()
    try:
        return args.handler(args)
    except GradcError as error:
        print(format_error(error, _source_of(error)), file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (gradc ... | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gradc: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        print(f"gradc: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        print("This is a bug in gradc; please report it with the command and the .model file.",
              file=sys.stderr)
        if os.environ.get("GRADC_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL_ERROR


def _source_of(error: GradcError) -> str | None:
    if error.location is None:
        return None
    try:
        return Path(error.location.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
