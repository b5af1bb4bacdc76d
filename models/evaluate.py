"""``vitalstream eval af|sepsis|anomaly``: the SHIPPED checkpoints on every record of a data folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from models import af, anomaly, checkpoint, sepsis
from models.datasets import challenge2017_labels, load_challenge2017, load_mitdb, load_sepsis

log = logging.getLogger(__name__)


def evaluate_af(data: Path, mitdb: Path | None = None, weights_dir: Path | None = None) -> dict[str, Any]:
    """Challenge 2017 metrics on every recording in REFERENCE.csv (+ per-interval MIT-BIH figures)."""
    ckpt = checkpoint.load(af.NAME, weights_dir)
    seqs = load_challenge2017(data, sorted(challenge2017_labels(data)))
    labels, probs = np.array([s.label for s in seqs]), af.record_probs(ckpt.model, seqs)
    scores = af.challenge_scores(labels, probs, ckpt.meta["thresholds"])
    scores.pop("predicted_class")
    out = {"model": af.NAME, "version": ckpt.version, "data": str(data), **_flatten(scores)}
    if mitdb is not None:
        records = (mitdb / "RECORDS").read_text().split()
        out["mitdb"] = af.beat_scores(ckpt.model, load_mitdb(mitdb, records), ckpt.meta["thresholds"]["af"])
    return out


def evaluate_sepsis(data: Path, weights_dir: Path | None = None) -> dict[str, Any]:
    """AUROC and normalised utility over every patient of a Challenge 2019 folder."""
    patients = load_sepsis(data)
    probs, meta = sepsis.predict_stays([p.vitals for p in patients], weights_dir)
    scores = sepsis.score_patients([p.labels for p in patients], probs, meta["thresholds"]["decision"])
    return {
        "model": sepsis.NAME,
        "version": meta["version"],
        "served": meta.get("served"),
        "data": str(data),
        **_flatten(scores),
    }


def evaluate_anomaly(data: Path, weights_dir: Path | None = None) -> dict[str, Any]:
    """Alarm rate per patient-hour on the non-septic patients of a Challenge 2019 folder."""
    ckpt = checkpoint.load(anomaly.NAME, weights_dir)
    mean, std = np.asarray(ckpt.meta["norm_mean"]), np.asarray(ckpt.meta["norm_std"])
    normal = [p.vitals for p in load_sepsis(data) if not p.labels.any()]
    rate = anomaly.alarm_rate(anomaly.stay_scores(ckpt.model, normal, mean, std), ckpt.meta["thresholds"]["alarm"])
    return {"model": anomaly.NAME, "version": ckpt.version, "data": str(data), **_flatten(rate)}


def _flatten(scores: dict[str, Any]) -> dict[str, Any]:
    """``{"f1_af": {"value", "ci95_low", "ci95_high"}}`` -> ``f1_af`` plus ``f1_af_ci95``: [low, high]."""
    out: dict[str, Any] = {}
    for key, value in scores.items():
        if isinstance(value, dict) and "value" in value:
            out[key] = value["value"]
            out[f"{key}_ci95"] = [value["ci95_low"], value["ci95_high"]]
        else:
            out[key] = value
    return out
