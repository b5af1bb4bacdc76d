"""Held-out metrics with patient- or record-level bootstrap 95% confidence intervals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

N_BOOTSTRAP = 1000


def bootstrap_ci(
    stat: Callable[[np.ndarray], float], n_units: int, seed: int = 0, n: int | None = None
) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of ``stat(indices)`` over resamples of the units with replacement."""
    n = n or N_BOOTSTRAP
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


def auroc_by_unit(units: list[np.ndarray], scores: list[np.ndarray], seed: int = 0, n: int | None = None):
    """AUROC over all rows and its bootstrap CI resampling units (patients), in O(rows) per resample.

    A resample is a weight per row (how often its unit was drawn); the Mann-Whitney count with ties
    as halves is then a cumulative sum over the rows sorted once.
    """
    y = np.concatenate(units).astype(float)
    unit_of_row = np.repeat(np.arange(len(units)), [len(u) for u in units])
    _, inv = np.unique(np.concatenate(scores), return_inverse=True)

    def auc(weights: np.ndarray) -> float:
        w = weights[unit_of_row]
        pos, neg = np.bincount(inv, w * y), np.bincount(inv, w * (1 - y))
        total = pos.sum() * neg.sum()
        return float((pos * (np.cumsum(neg) - 0.5 * neg)).sum() / total) if total > 0 else float("nan")

    rng = np.random.default_rng(seed)
    n = n or N_BOOTSTRAP
    draws = [auc(np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units))) for _ in range(n)]
    draws = [d for d in draws if np.isfinite(d)]
    return auc(np.ones(len(units))), tuple(float(v) for v in np.percentile(draws, [2.5, 97.5]))
