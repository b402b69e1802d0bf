"""Scoring predictions: accuracy for classification (per token and per sequence for labels per step), MAE and
RMSE for regression, and the confusion matrix."""

from __future__ import annotations

import numpy as np

from .data import Task


def predicted_classes(task: Task, prediction: np.ndarray) -> np.ndarray:
    if task.kind == "binary":
        return (prediction > task.threshold).astype(np.int64)
    return np.argmax(prediction, axis=-1)


def score(task: Task, prediction: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics for one split."""
    if task.kind in ("classification", "binary"):
        right = predicted_classes(task, prediction) == labels
        metrics = {"accuracy": float(np.mean(right))}
        if task.sequence:  # every step of a sequence right
            metrics["sequence_accuracy"] = float(np.mean(np.all(right.reshape(len(right), -1), axis=1)))
        return metrics
    error = prediction.astype(np.float64) - labels
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}


def confusion_matrix(task: Task, prediction: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64).ravel(), predicted_classes(task, prediction).ravel()), 1)
    return matrix
