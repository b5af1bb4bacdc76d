"""Training commands run end to end on tiny real subsets; their checkpoints reproduce their metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import af, anomaly, checkpoint, metrics, sepsis
from models.datasets import challenge2017_labels, data_dir, load_challenge2017, load_sepsis

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _train(name: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "streamer.cli.main", "train", name, "--quick", "--weights-dir", str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"{name} ")
    return json.loads((out / f"{name}.json").read_text())


def _check_meta(meta: dict) -> None:
    for key in ("config", "feature_version", "thresholds", "data_sha256", "metrics", "split", "version"):
        assert key in meta
    assert len(meta["data_sha256"]) == 64 and meta["quick"] is True


def test_train_sepsis_quick_reproduces_its_test_metrics(tmp_path, monkeypatch) -> None:
    meta = _train("sepsis", tmp_path)
    _check_meta(meta)
    by = {p.name: p for p in load_sepsis(data_dir() / "challenge2019_sepsis", limit=150)}
    test = [by[n] for n in meta["split"]["test_patients"]]
    probs, _ = sepsis.predict_stays([p.vitals for p in test], tmp_path)
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 50)
    again = sepsis.score_patients([p.labels for p in test], probs, meta["thresholds"]["decision"])
    assert again["utility"]["value"] == pytest.approx(meta["metrics"]["test"]["utility"]["value"], abs=1e-4)
    assert again["auroc"]["value"] == pytest.approx(meta["metrics"]["test"]["auroc"]["value"], abs=1e-4)


def test_train_anomaly_quick_reproduces_its_alarm_rate(tmp_path, monkeypatch) -> None:
    meta = _train("anomaly", tmp_path)
    _check_meta(meta)
    ckpt = checkpoint.load("anomaly", tmp_path)
    by = {p.name: p for p in load_sepsis(data_dir() / "challenge2019_sepsis", limit=150)}
    normal = [by[n].vitals for n in meta["split"]["test_patients"] if not by[n].labels.any()]
    mean, std = np.asarray(meta["norm_mean"]), np.asarray(meta["norm_std"])
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 50)
    again = anomaly.alarm_rate(anomaly.stay_scores(ckpt.model, normal, mean, std), meta["thresholds"]["alarm"])
    assert again["alarms_per_patient_hour"]["value"] == meta["metrics"]["test"]["alarms_per_patient_hour"]["value"]


def test_train_af_quick_reproduces_its_f1(tmp_path, monkeypatch) -> None:
    meta = _train("af", tmp_path)
    _check_meta(meta)
    ckpt = checkpoint.load("af", tmp_path)
    folder = data_dir() / "challenge2017_af"
    names = meta["split"]["test_records"]
    labels = challenge2017_labels(folder)
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 50)
    seqs = load_challenge2017(folder, names)
    again = af.challenge_scores(
        np.array([af.AF_CLASSES.index(labels[n]) for n in names]), af.record_probs(ckpt.model, seqs), meta["thresholds"]
    )
    assert again["f1_mean_nao"]["value"] == meta["metrics"]["test"]["f1_mean_nao"]["value"]
    assert again["confusion_rows_true_cols_pred"] == meta["metrics"]["test"]["confusion_rows_true_cols_pred"]
