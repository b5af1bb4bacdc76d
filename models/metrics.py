"""Held-out metrics with patient- or record-level bootstrap 95% confidence intervals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

N_BOOTSTRAP = 1000


def bootstrap_ci(
    stat: Callable[[np.ndarray], float], n_units: int, seed: int = 0, n: int = N_BOOTSTRAP
) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of ``stat(indices)`` over resamples of the units with replacement."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        v = stat(rng.integers(0, n_units, n_units))
        if np.isfinite(v):
            values.append(v)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def with_ci(value: float, ci: tuple[float, float]) -> dict[str, float]:
    return {"value": round(float(value), 4), "ci95_low": round(ci[0], 4), "ci95_high": round(ci[1], 4)}


def f1_per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return f1_score(y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=0)


def safe_auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y_true, score)) if 0 < y_true.sum() < len(y_true) else float("nan")
