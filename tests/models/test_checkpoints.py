"""The shipped checkpoints load, are what their cards describe, and reproduce their held-out metrics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models import af, anomaly, cards, checkpoint, metrics, sepsis
from models.datasets import challenge2017_labels, data_dir, load_challenge2017, load_sepsis

pytestmark = pytest.mark.unit

NAMES = ("af", "sepsis", "anomaly")


@pytest.fixture(scope="module")
def patients():
    return {p.name: p for p in load_sepsis(data_dir() / "challenge2019_sepsis")}


@pytest.mark.parametrize("name", NAMES)
def test_shipped_checkpoint_metadata_and_card(name: str) -> None:
    meta = checkpoint.load_meta(name)
    assert meta["quick"] is False
    assert meta["split"]["unit"] in ("patient", "recording")
    assert len(meta["data_sha256"]) == 64
    card = (cards.CARDS_DIR / f"{name}.md").read_text()
    assert card == cards.render(name)  # the card is regenerated from this very checkpoint
    assert meta["version"] in card


def test_tampered_weights_are_refused(tmp_path) -> None:
    for suffix in (".pt", ".json"):
        shutil.copy(checkpoint.WEIGHTS_DIR / f"anomaly{suffix}", tmp_path / f"anomaly{suffix}")
    blob = bytearray((tmp_path / "anomaly.pt").read_bytes())
    blob[-20] ^= 0xFF
    (tmp_path / "anomaly.pt").write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match="SHA-256"):
        checkpoint.load("anomaly", tmp_path)


def test_sepsis_reproduces_stored_test_metrics(patients, monkeypatch) -> None:
    meta = checkpoint.load_meta("sepsis")
    test = [patients[n] for n in meta["split"]["test_patients"]]
    probs, _ = sepsis.predict_stays([p.vitals for p in test])
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 20)
    again = sepsis.score_patients([p.labels for p in test], probs, meta["thresholds"]["decision"])
    for key in ("auroc", "utility"):
        assert again[key]["value"] == pytest.approx(meta["metrics"]["test"][key]["value"], abs=1e-4)
    assert again["n_patients"] == meta["metrics"]["test"]["n_patients"]


def test_anomaly_reproduces_stored_alarm_rate(patients, monkeypatch) -> None:
    ckpt = checkpoint.load("anomaly")
    normal = [patients[n].vitals for n in ckpt.meta["split"]["test_patients"] if not patients[n].labels.any()]
    mean, std = np.asarray(ckpt.meta["norm_mean"]), np.asarray(ckpt.meta["norm_std"])
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 20)
    again = anomaly.alarm_rate(anomaly.stay_scores(ckpt.model, normal, mean, std), ckpt.meta["thresholds"]["alarm"])
    stored = ckpt.meta["metrics"]["test"]["alarms_per_patient_hour"]["value"]
    assert again["alarms_per_patient_hour"]["value"] == pytest.approx(stored, abs=1e-4)
    assert stored <= 2 * ckpt.meta["thresholds"]["target_fpr_per_patient_hour"]


def test_af_checkpoint_is_the_merged_ensemble_it_describes() -> None:
    """N_MEMBERS GRUs side by side: the recurrent weights between two members are exactly zero."""
    ckpt = checkpoint.load("af")
    k, h = af.N_MEMBERS, af.N_HIDDEN
    assert ckpt.model.config.n_hidden == k * h
    assert ckpt.meta["gru_ensemble"].startswith(f"{k} GRUs of {h} units")
    w_hh = ckpt.model.gru.weight_hh_l0.detach().reshape(3, k, h, k, h).permute(0, 1, 3, 2, 4)  # (gate, k, k, h, h)
    between = torch.from_numpy(~np.eye(k, dtype=bool))
    assert float(w_hh[:, between].abs().max()) == 0.0
    assert bool((w_hh[:, ~between].abs().amax(dim=(0, 2, 3)) > 0).all())  # every member has its own weights


def test_af_reproduces_stored_test_predictions_on_a_subset() -> None:
    """A quick subset: 60 test recordings, through our beat detector, get their stored predictions."""
    ckpt = checkpoint.load("af")
    stored = ckpt.meta["metrics"]["test"]["predicted_class"]
    names = ckpt.meta["split"]["test_records"][::7][:60]
    probs = af.record_probs(ckpt.model, load_challenge2017(data_dir() / "challenge2017_af", names))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert af.decide(probs, ckpt.meta["thresholds"]).tolist() == [stored[n] for n in names]


def test_af_reproduces_stored_test_metrics_in_full(monkeypatch) -> None:
    ckpt = checkpoint.load("af")
    folder = data_dir() / "challenge2017_af"
    names = ckpt.meta["split"]["test_records"]
    labels = challenge2017_labels(folder)
    monkeypatch.setattr(metrics, "N_BOOTSTRAP", 20)
    again = af.challenge_scores(
        np.array([af.AF_CLASSES.index(labels[n]) for n in names]),
        af.record_probs(ckpt.model, load_challenge2017(folder, names)),
        ckpt.meta["thresholds"],
    )
    assert again["confusion_rows_true_cols_pred"] == ckpt.meta["metrics"]["test"]["confusion_rows_true_cols_pred"]
    assert again["f1_mean_nao"]["value"] == ckpt.meta["metrics"]["test"]["f1_mean_nao"]["value"]
