"""``vitalstream eval af|sepsis|anomaly``: the SHIPPED checkpoints on every record of a data folder."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models import af, anomaly, checkpoint, sepsis
from models.datasets import AF_CLASSES, challenge2017_labels, load_challenge2017, load_mitdb, load_sepsis

log = logging.getLogger(__name__)


def evaluate_af(data: Path, mitdb: Path | None = None, weights_dir: Path | None = None) -> dict[str, Any]:
    """Challenge 2017 metrics on every recording in REFERENCE.csv (+ per-interval MIT-BIH figures)."""
    ckpt = checkpoint.load(af.NAME, weights_dir)
    seqs = load_challenge2017(data, sorted(challenge2017_labels(data)))
    scores = af.challenge_scores(np.array([s.label for s in seqs]), af.record_probs(ckpt.model, seqs))
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


def _print(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return 0
    for key, value in result.items():
        print(f"{key:32s} {value}")
    return 0


def _handle_af(args: argparse.Namespace) -> int:
    return _print(evaluate_af(args.data, args.mitdb, args.weights_dir), args.json)


def _handle_sepsis(args: argparse.Namespace) -> int:
    return _print(evaluate_sepsis(args.data, args.weights_dir), args.json)


def _handle_anomaly(args: argparse.Namespace) -> int:
    return _print(evaluate_anomaly(args.data, args.weights_dir), args.json)


def register_eval(eval_subparsers) -> None:
    specs = (
        ("af", _handle_af, f"AF detector: F1 of AF and mean F1 over N/A/O ({'/'.join(AF_CLASSES)} labels)"),
        ("sepsis", _handle_sepsis, "sepsis risk: AUROC and normalised clinical utility"),
        ("anomaly", _handle_anomaly, "anomaly score: alarms per patient-hour on non-septic stays"),
    )
    for name, handler, help_text in specs:
        parser = eval_subparsers.add_parser(name, help=help_text)
        parser.add_argument("--data", type=Path, required=True, help="folder in the layout of ../shared/data/<set>")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
        parser.add_argument("--weights-dir", type=Path, default=None, help="checkpoints (default: shipped)")
        if name == "af":
            parser.add_argument("--mitdb", type=Path, default=None, help="also score an MIT-BIH folder per interval")
        parser.set_defaults(func=handler)
