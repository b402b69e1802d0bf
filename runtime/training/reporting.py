"""What a training run shows while it runs: a progress bar per epoch on a terminal, one line per epoch (or
one JSON object per line with ``--log-json``), nothing but the final result with ``quiet``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def format_record(record: dict[str, Any]) -> str:
    """``epoch  3/30  train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9630  lr 0.00097  0.21s``"""
    parts = [f"epoch {record['epoch']:>3}/{record['epochs']}"]
    for key, value in record.items():
        if key in ("epoch", "epochs", "seconds", "lr") or value is None:
            continue
        parts.append(f"{key} {value:.4f}")
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['seconds']:.2f}s")
    return "  ".join(parts)


class Reporter:
    def __init__(self, quiet: bool = False, json_lines: bool = False, out: TextIO | None = None,
                 progress: bool | None = None):
        self.quiet = quiet
        self.json_lines = json_lines
        self.out = out or sys.stdout
        self.progress_enabled = (not quiet and not json_lines and sys.stderr.isatty()) if progress is None \
            else progress
        self._last_draw = 0.0

    def event(self, kind: str, text: str, **fields: Any) -> None:
        """A line of information (start, early stop, result); in JSON mode an object with ``event``."""
        if self.quiet and kind != "result":
            return
        if self.json_lines:
            print(json.dumps({"event": kind, **fields}), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def progress(self, epoch: int, epochs: int, step: int, steps: int, loss: float | None) -> None:
        """A progress bar with the last loss (None where the loss stays on the device until the epoch ends)."""
        if not self.progress_enabled:
            return
        now = time.monotonic()
        if step < steps and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 30
        filled = int(width * step / steps)
        bar = "#" * filled + "-" * (width - filled)
        shown = f" loss {loss:.4f}" if loss is not None else ""
        print(f"\repoch {epoch}/{epochs} [{bar}] {step}/{steps}{shown}", end="", file=sys.stderr, flush=True)
        if step == steps:
            print("\r" + " " * (width + 50) + "\r", end="", file=sys.stderr, flush=True)

    def epoch(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        if self.json_lines:
            print(json.dumps({"event": "epoch", **record}), file=self.out, flush=True)
        else:
            print(format_record(record), file=self.out, flush=True)
