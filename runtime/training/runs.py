"""A run's folder: ``runs/<model>-<timestamp>/`` (or a chosen folder) with the resolved configuration
(``config.json``), one JSON line per epoch (``metrics.jsonl``), the ``best.npz`` and ``last.npz``
checkpoints, ``curves.png`` (with the best epoch marked), for an autoencoder ``reconstructions.png``, and the
test split's result (``test.json``, which
says whose parameters it measured). Every file is written whole (temporary file, then rename)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from gradc.dsl.diagnostics import DataError

from ..files import atomic_write_bytes, atomic_write_text, file_stem


class RunDirectory:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, model: str, out: str | Path | None = None, root: str | Path = "runs") -> RunDirectory:
        if out is not None:
            path = Path(out)
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            stem = file_stem(model)
            path = Path(root) / f"{stem}-{stamp}"
            suffix = 2
            while path.exists():
                path = Path(root) / f"{stem}-{stamp}-{suffix}"
                suffix += 1
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create run folder {path}: {exc.strerror}") from None
        return cls(path)

    @property
    def best(self) -> Path:
        return self.path / "best.npz"

    @property
    def last(self) -> Path:
        return self.path / "last.npz"

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2) + "\n")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    def write_test(self, result: dict[str, Any]) -> None:
        atomic_write_text(self.path / "test.json", json.dumps(result, indent=2) + "\n")

    def write_curves(self, history: list[dict[str, Any]], title: str, best_epoch: int = 0,
                     monitored: str = "validation") -> Path | None:
        if not history:
            return None
        atomic_write_bytes(self.path / "curves.png", plot_curves(history, title, best_epoch, monitored))
        return self.path / "curves.png"

    def write_reconstructions(self, originals, rebuilt, title: str) -> Path:
        atomic_write_bytes(self.path / "reconstructions.png", plot_reconstructions(originals, rebuilt, title))
        return self.path / "reconstructions.png"


def plot_reconstructions(originals, rebuilt, title: str) -> bytes:
    """Two rows of grey images, the originals above their reconstructions, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    count = len(originals)
    figure = Figure(figsize=(1.2 * count, 2.9), dpi=100)
    axes = figure.subplots(2, count, squeeze=False)
    for k in range(count):
        for row, images in enumerate((originals, rebuilt)):
            ax = axes[row][k]
            ax.imshow(images[k], cmap="gray_r", vmin=float(originals.min()), vmax=float(originals.max()))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][k].set_title(str(k + 1), fontsize=8)
    axes[0][0].set_ylabel("original", fontsize=8)
    axes[1][0].set_ylabel("rebuilt", fontsize=8)
    figure.suptitle(f"{title}: test examples and their reconstructions", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_curves(history: list[dict[str, Any]], title: str, best_epoch: int = 0, monitored: str = "validation"
                ) -> bytes:
    """Loss (train and validation) and every metric against epochs, as PNG bytes; a dashed line marks
    ``best_epoch`` (the lowest ``monitored`` loss, the parameters of best.npz)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    metrics = [k for k in history[-1] if k.startswith(("val_", "train_")) and not k.endswith("_loss")
               and history[-1][k] is not None]
    figure = Figure(figsize=(10 if metrics else 5.5, 4), dpi=100)
    axes = figure.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    for key in ("train_loss", "val_loss"):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            axes[0].plot(epochs, values, marker=".", label=key.replace("_", " "))
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_title(f"{title}: loss")
    axes[0].legend()
    if metrics:
        for key in metrics:
            axes[1].plot(epochs, [r.get(key) for r in history], marker=".", label=key.replace("_", " "))
        axes[1].set_xlabel("epoch")
        axes[1].set_title(f"{title}: metrics")
        axes[1].legend()
    for ax in axes:
        if best_epoch:
            ax.axvline(best_epoch, color="0.4", linestyle="--", linewidth=1,
                       label=f"best epoch {best_epoch} (lowest {monitored} loss)")
            ax.legend()
        ax.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
