"""Located diagnostics: every mistake in a .model file is reported as ``path:line:col: error: message``.

A :class:`GradcError` carries a :class:`SourceLocation`; :func:`format_diagnostic` renders it the way
compilers do (the message, the offending source line and a caret under the spot), so the CLI never
shows a Python traceback for a bad model file.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A point (and optional span on the same line) in a source file. Lines and columns start at 1."""

    path: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class GradcError(Exception):
    """A user-facing error. ``location`` is set when the error points into a .model file."""

    def __init__(self, message: str, location: SourceLocation | None = None, notes: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.location = location
        self.notes = list(notes)


class ModelError(GradcError):
    """A mistake in a .model file: syntax, names, types, shapes or the train block."""


class ShapeError(ModelError):
    """Shapes or dtypes that do not fit an op; the message names both shapes."""


class DataError(GradcError):
    """Bad data handed to a program: a missing file, a wrong shape or dtype, NaN."""


class GradcWarning(UserWarning):
    """Something gradc worked around (a damaged cache entry, say); the CLI prints ``gradc: warning: ...``."""


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning"
    message: str
    location: SourceLocation | None = None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""


# Characters a terminal may act on instead of showing: C0 controls (ESC starts escape sequences, BEL rings),
# DEL, C1 controls (U+009B is a one-character CSI) and the bidirectional overrides that reorder what is shown.
_CONTROL_CHARACTERS = r"\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"


def escape_controls(text: str, keep: str = "") -> str:
    """Write each control character in ``text`` as a visible escape (ESC as ``\\x1b``), except those in
    ``keep``; a tab is always kept. Text from model files and data goes through this before a terminal."""
    pattern = _control_pattern(keep)
    return pattern.sub(_escape_one, text) if pattern.search(text) else text


def _escape_one(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


@functools.lru_cache(maxsize=8)
def _control_pattern(keep: str) -> re.Pattern:
    kept = "".join(re.escape(ch) for ch in keep)
    return re.compile(f"(?![{kept}])[{_CONTROL_CHARACTERS}]" if kept else f"[{_CONTROL_CHARACTERS}]")


def format_diagnostic(
    severity: str,
    message: str,
    location: SourceLocation | None,
    source: str | None,
    notes: Iterable[str] = (),
) -> str:
    """Render a diagnostic as ``path:line:col: severity: message``, then the source line and a caret.

    Control characters from the file or the data (ESC, BEL, ...) are shown escaped, and the caret
    still points at the right spot of the escaped line."""
    if location is None:
        lines = [f"gradc: {severity}: {message}"]
    else:
        lines = [f"{location}: {severity}: {message}"]
        text_line = _source_line(source, location.line)
        if text_line is not None:
            raw = text_line.expandtabs(1)
            lines.append("    " + escape_controls(raw))
            width = 1
            if location.end_col is not None and location.end_col > location.col:
                width = location.end_col - location.col
            width = max(1, min(width, len(raw) - location.col + 1))
            start = location.col - 1
            before = len(escape_controls(raw[:start]))
            under = len(escape_controls(raw[start:start + width])) or 1
            lines.append("    " + " " * before + "^" + "~" * (under - 1))
    lines.extend(f"note: {note}" for note in notes)
    return escape_controls("\n".join(lines), keep="\n")


def format_error(error: GradcError, source: str | None) -> str:
    return format_diagnostic("error", error.message, error.location, source, error.notes)


def _source_line(source: str | None, line: int) -> str | None:
    if source is None:
        return None
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None
