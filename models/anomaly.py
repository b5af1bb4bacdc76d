"""Unsupervised anomaly score: a GRU forecasts the next vitals; the score is its squared z-error.

Trained on the non-septic patients of the Challenge 2019 training split (hourly vitals); the alarm
threshold is the quantile of validation non-septic patient-hours that bounds the false-positive rate
per patient-hour at ``TARGET_FPR``; the rate is then measured on test non-septic patients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import checkpoint, metrics
from models.datasets import files_sha256, load_bidmc_minutes, load_sepsis, sepsis_files, split_ids
from models.features import N_VITAL_INPUTS, VITALS, clean_vitals, vitals_inputs, vitals_targets
from models.gru import GRUConfig, GRUNet, build
from models.train import fit, predict, seed_everything

log = logging.getLogger(__name__)

NAME = "anomaly"
SEED = 2019  # the sepsis split: the same patients are held out for both models
TARGET_FPR = 0.01


def step_scores(pred_prev: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean squared z-error over the observed vitals of each step; NaN where none was observed. (T,)."""
    err = (target - pred_prev) ** 2  # (T, 7), NaN where not observed
    n = np.sum(~np.isnan(err), axis=1)
    return np.where(n > 0, np.nansum(err, axis=1) / np.maximum(n, 1), np.nan)


def stay_scores(model: GRUNet, vitals: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """Scores of hours 1..T-1 of each stay (hour 0 has no forecast)."""
    empty = np.full(len(VITALS), np.nan)
    inputs = [vitals_inputs(v, empty, mean, std)[0] for v in vitals]
    outs = predict(model, inputs)
    return [step_scores(o[:-1], vitals_targets(v, mean, std)[1:]) for o, v in zip(outs, vitals, strict=True)]


def _masked_mse(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    valid = ~torch.isnan(y) & mask[..., None]
    err = torch.where(valid, out - torch.nan_to_num(y), torch.zeros_like(out))
    return (err**2).sum() / valid.sum().clamp_min(1)


def alarm_rate(scores: Sequence[np.ndarray], threshold: float, seed: int = SEED, step: str = "hour") -> dict[str, Any]:
    """Fraction of scored patient-steps above threshold, with a patient-level bootstrap CI."""
    above = np.array([np.sum(s[~np.isnan(s)] >= threshold) for s in scores], dtype=float)
    hours = np.array([np.sum(~np.isnan(s)) for s in scores], dtype=float)
    rate = lambda idx: float(above[idx].sum() / max(hours[idx].sum(), 1))  # noqa: E731
    everyone = np.arange(len(scores))
    return {
        "n_patients": len(scores),
        f"n_scored_{step}s": int(hours.sum()),
        f"alarms_per_patient_{step}": metrics.with_ci(rate(everyone), metrics.bootstrap_ci(rate, len(scores), seed)),
    }


def train(data: Path, weights_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Fit the forecaster on non-septic training stays, calibrate on validation, measure on test."""
    seed_everything(SEED)
    folder = data / "challenge2019_sepsis"
    patients = load_sepsis(folder, limit=150 if quick else None)
    split = split_ids([p.name for p in patients], ["septic" if p.labels.any() else "non" for p in patients], SEED)
    by = {p.name: p for p in patients}
    normal = {k: [by[n].vitals for n in v if not by[n].labels.any()] for k, v in split.items()}
    train_v = clean_vitals(np.concatenate(normal["train"]))
    mean, std = np.nanmean(train_v, axis=0), np.nanstd(train_v, axis=0) + 1e-6
    empty = np.full(len(VITALS), np.nan)
    items = [
        (vitals_inputs(v, empty, mean, std)[0][:-1], vitals_targets(v, mean, std)[1:])
        for v in normal["train"]
        if len(v) > 1
    ]

    model = build(GRUConfig(n_inputs=N_VITAL_INPUTS, n_outputs=len(VITALS), n_hidden=32))
    val_loss = lambda m: -float(np.nanmean(np.concatenate(stay_scores(m, normal["val"], mean, std))))  # noqa: E731
    model, history = fit(model, items, _masked_mse, val_loss, epochs=1 if quick else 25, lr=5e-3)
    val_scores = np.concatenate(stay_scores(model, normal["val"], mean, std))
    threshold = float(np.nanquantile(val_scores, 1.0 - TARGET_FPR))
    septic_test = [by[n] for n in split["test"] if by[n].labels.any()]
    meta = {
        "version_prefix": "1",
        "task": "squared z-error of the one-step vitals forecast; alarm above the calibrated threshold",
        "feature_version": "vitals-locf-1",
        "inputs": list(VITALS),
        "norm_mean": mean.tolist(),
        "norm_std": std.tolist(),
        "thresholds": {"alarm": threshold, "target_fpr_per_patient_hour": TARGET_FPR},
        "data_sha256": files_sha256(sepsis_files(folder)[: len(patients)], folder),
        "data_files": len(patients),
        "split": {
            "seed": SEED,
            "unit": "patient",
            "stratified_by": "septic",
            "fractions": [0.6, 0.2, 0.2],
            "n": {k: len(v) for k, v in normal.items()},
            "training_patients": "non-septic only",
            "test_patients": split["test"],
        },
        "metrics": {
            "test": alarm_rate(stay_scores(model, normal["test"], mean, std), threshold),
            "val": alarm_rate(stay_scores(model, normal["val"], mean, std), threshold),
            "test_septic_last_12h_before_onset": _pre_onset_rate(model, septic_test, mean, std, threshold),
            "bidmc_per_minute": None if quick else _bidmc_rate(model, data / "bidmc", mean, std, threshold),
        },
        "history": history,
        "quick": quick,
    }
    checkpoint.save(NAME, model, meta, weights_dir)
    return checkpoint.load_meta(NAME, weights_dir)


def _pre_onset_rate(model, septic, mean, std, threshold) -> dict[str, Any] | None:
    """Alarm rate in the 12 h before t_sepsis of septic test patients (t_sepsis = first label + 6)."""
    if not septic:
        return None
    windows = []
    for p, s in zip(septic, stay_scores(model, [p.vitals for p in septic], mean, std), strict=True):
        t_sepsis = int(np.argmax(p.labels)) + 6
        hours = np.arange(1, len(p.labels))  # score k belongs to hour k + 1
        windows.append(s[(hours >= t_sepsis - 12) & (hours < t_sepsis)])
    return alarm_rate(windows, threshold)


def _bidmc_rate(model, folder: Path, mean, std, threshold) -> dict[str, Any] | None:
    """External check at the streaming cadence: BIDMC ICU monitor numerics, stepped once per minute."""
    if not (folder / "RECORDS").exists():
        return None
    return alarm_rate(stay_scores(model, load_bidmc_minutes(folder), mean, std), threshold, step="minute")
