"""The gradc command line. Every mistake in a .model file or in the data is reported as a message (with
``file:line:col`` and a caret for model files) and exit status 1, never as a traceback."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gradc.dsl.diagnostics import (
    GradcError,
    GradcWarning,
    did_you_mean,
    escape_controls,
    format_diagnostic,
    format_error,
)
from gradc.runtime.distributed.world import abort, world_for_errors
from gradc.runtime.execution.threads import limit_blas_threads
from gradc.runtime.training.fit import TrainingDiverged

from . import __version__
from .commands import cache, check, compile, evaluate, export, gradcheck, graph, import_onnx, predict, run, train

COMMANDS = (check, graph, compile, run, gradcheck, train, evaluate, predict, export, import_onnx, cache)
EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 70


class GradcArgumentParser(argparse.ArgumentParser):
    """argparse, answering a mistyped subcommand, choice or option with "did you mean", as the model language
    does. Its subcommands' parsers are of this class too (argparse makes them with the parent's class)."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            listed = ", ".join(repr(choice) for choice in choices)
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {listed}){did_you_mean(str(value), choices)}")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            options = self._option_strings_of(parsed)
            hints = "".join(did_you_mean(extra.split("=", 1)[0], options) for extra in extras
                            if extra.startswith("-"))
            self.error(f"unrecognized arguments: {' '.join(extras)}{hints}")
        return parsed

    def _option_strings_of(self, parsed: argparse.Namespace) -> list[str]:
        """The options of this parser and of the subcommand that was given."""
        parsers = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and getattr(parsed, action.dest, None):
                parsers.append(action.choices[getattr(parsed, action.dest)])
        return [option for parser in parsers for action in parser._actions for option in action.option_strings
                if option.startswith("--")]


def build_parser() -> argparse.ArgumentParser:
    parser = GradcArgumentParser(prog="gradc", description="A compiler for neural networks in .model files.")
    parser.add_argument("--version", action="version", version=f"gradc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    with _terminal_safe_output(), warnings.catch_warnings():
        warnings.simplefilter("always", GradcWarning)
        warnings.showwarning = _show_warning
        args = build_parser().parse_args(argv)
        args.argv = list(argv) if argv is not None else sys.argv[1:]  # what a launcher of ranks passes on
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    limit_blas_threads()
    try:
        return args.handler(args)
    except GradcError as error:
        message = format_error(error, _source_of(error))
        world = world_for_errors()
        if world.distributed and not isinstance(error, TrainingDiverged):  # the others wait for this rank
            abort(world, message, EXIT_USER_ERROR)
        if world.is_root:  # a divergence is seen by every rank at the same step: rank 0 says so
            print(message, file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (gradc ... | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gradc: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        world = world_for_errors()
        if world.distributed:
            if os.environ.get("GRADC_DEBUG"):
                traceback.print_exc()
            abort(world, f"internal error: {type(error).__name__}: {error}", EXIT_INTERNAL_ERROR)
        print(f"gradc: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        print("This is a bug in gradc; please report it with the command and the .model file.",
              file=sys.stderr)
        if os.environ.get("GRADC_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL_ERROR


class _ControlEscapingStream:
    """A text stream that writes control characters (ESC, BEL, ...) as visible escapes. Names, strings and
    paths from model files and data reach many messages; none may drive the terminal. Newlines, tabs and
    the carriage return of the progress bar pass."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.escaping = True  # off once the command has finished: a library that kept a reference to this
        # stream (colorama writes its colour reset at exit) then writes through unchanged

    def write(self, text: str) -> int:
        return self._stream.write(escape_controls(text, keep="\n\r") if self.escaping else text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _terminal_safe_output() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    wrappers = _ControlEscapingStream(sys.stdout), _ControlEscapingStream(sys.stderr)
    sys.stdout, sys.stderr = wrappers
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for wrapper in wrappers:
            wrapper.escaping = False


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``gradc: warning: ...`` for gradc's own warnings; Python's format for the others."""
    if issubclass(category, GradcWarning):
        print(format_diagnostic("warning", str(message), None, None), file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def _source_of(error: GradcError) -> str | None:
    if error.location is None:
        return None
    try:
        # bytes that are not UTF-8 are shown as \xNN: the line is still echoed with its caret; a byte-order
        # mark is dropped, as the parser drops it, so columns agree
        data = Path(error.location.path).read_bytes()
        return data.decode("utf-8", errors="backslashreplace").removeprefix("\ufeff")
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
