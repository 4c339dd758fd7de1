"""Per-fold metrics and their aggregation, as the paper reports them (§4.2: macro P/R/F1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from merkit.core.labels import QUADRANTS

N_CLASSES = len(QUADRANTS)


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Macro precision, recall and F1, accuracy, per-quadrant F1 and the confusion matrix.

    A quadrant never predicted counts as precision 0 (sklearn's ``zero_division=0``). The macro
    averages run over the quadrants present in ``y_true`` (all four in a stratified fold): a
    quadrant a test set lacks (e.g. a held-out genre without Q2 songs) has no F1 to average, and
    a song predicted into it is still an error through its own quadrant's recall and the
    accuracy. ``f1_per_class`` keeps all four (0 for an absent quadrant).
    """
    labels = list(range(N_CLASSES))
    present = [c for c in labels if np.any(np.asarray(y_true) == c)] or labels
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_per_class": [float(v) for v in per_class],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def summarize(per_fold: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over folds of each metric; per-quadrant F1 averaged; confusion summed.

    The reported F1 is the mean of per-fold macro F1 values, not the F1 of the mean P and R.
    """
    if not per_fold:
        raise ValueError("no folds to summarise")
    summary: dict[str, Any] = {"n_splits": len(per_fold)}
    for key in ("precision", "recall", "f1", "accuracy"):
        values = np.array([m[key] for m in per_fold], dtype=float)
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=0))
    per_class = np.array([m["f1_per_class"] for m in per_fold], dtype=float).mean(axis=0)
    for quadrant, value in zip(QUADRANTS, per_class, strict=True):
        summary[f"f1_{quadrant}"] = float(value)
    summary["confusion"] = np.sum([m["confusion"] for m in per_fold], axis=0).tolist()
    return summary
