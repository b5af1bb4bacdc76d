"""Normalised clinical utility of the PhysioNet/CinC Challenge 2019 (Reyna et al., Crit Care Med 2020).

Written from the published definition. Per patient-hour t, with t_sepsis = first SepsisLabel row + 6
(the label is shifted 6 h early) and dt = t - t_sepsis:

- septic, predicted positive: rises linearly from 0 at dt = -12 to ``max_u_tp`` at dt = -6, falls
  linearly to 0 at dt = +3, never below ``u_fp`` (an early alarm costs as much as a false one);
- septic, predicted negative: 0 until dt = -6, then falls linearly to ``min_u_fn`` at dt = +3;
- non-septic: ``u_fp`` for a positive, ``u_tn`` for a negative;
- nothing counts after dt = +3.

The total over patients is normalised so that the best possible predictions (positive exactly from
dt = -12 to +3) score 1 and always-negative predictions score 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UtilityParams:
    dt_early: float = -12.0
    dt_optimal: float = -6.0
    dt_late: float = 3.0
    max_u_tp: float = 1.0
    min_u_fn: float = -2.0
    u_fp: float = -0.05
    u_tn: float = 0.0


DEFAULT = UtilityParams()


def hourly_utilities(labels: np.ndarray, p: UtilityParams = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Utility of each hour if predicted positive, and if predicted negative. Two arrays (T,)."""
    labels = np.asarray(labels, dtype=bool)
    if not labels.any():
        return np.full(len(labels), p.u_fp), np.full(len(labels), p.u_tn)
    t_sepsis = float(np.argmax(labels)) - p.dt_optimal
    dt = np.arange(len(labels), dtype=float) - t_sepsis
    rising = p.max_u_tp * (dt - p.dt_early) / (p.dt_optimal - p.dt_early)
    falling = p.max_u_tp * (p.dt_late - dt) / (p.dt_late - p.dt_optimal)
    u_tp = np.where(dt <= p.dt_optimal, np.maximum(rising, p.u_fp), falling)
    u_fn = np.where(dt <= p.dt_optimal, 0.0, p.min_u_fn * (dt - p.dt_optimal) / (p.dt_late - p.dt_optimal))
    counted = dt <= p.dt_late
    return np.where(counted, u_tp, 0.0), np.where(counted, u_fn, 0.0)


def patient_utility(labels: np.ndarray, predictions: np.ndarray, p: UtilityParams = DEFAULT) -> float:
    """Sum of the hourly utilities of one patient's 0/1 predictions."""
    u_pos, u_neg = hourly_utilities(labels, p)
    return float(np.where(np.asarray(predictions, dtype=bool), u_pos, u_neg).sum())


def best_predictions(labels: np.ndarray, p: UtilityParams = DEFAULT) -> np.ndarray:
    """The predictions of an oracle: positive from dt_early to dt_late around t_sepsis."""
    labels = np.asarray(labels, dtype=bool)
    best = np.zeros(len(labels), dtype=bool)
    if labels.any():
        t_sepsis = int(np.argmax(labels)) - p.dt_optimal
        lo, hi = max(0, int(t_sepsis + p.dt_early)), min(len(labels), int(t_sepsis + p.dt_late) + 1)
        best[lo:hi] = True
    return best


def normalized_utility(
    labels: Sequence[np.ndarray], predictions: Sequence[np.ndarray], p: UtilityParams = DEFAULT
) -> float:
    """(observed - always negative) / (best - always negative), summed over all patients."""
    observed = sum(patient_utility(y, q, p) for y, q in zip(labels, predictions, strict=True))
    best = sum(patient_utility(y, best_predictions(y, p), p) for y in labels)
    inaction = sum(patient_utility(y, np.zeros(len(y), dtype=bool), p) for y in labels)
    if best == inaction:
        return float("nan")
    return float((observed - inaction) / (best - inaction))
