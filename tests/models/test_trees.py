"""The tree-model path: hash-checked pickle, and its streaming scores equal the offline whole-stay scores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from models import checkpoint, metrics, sepsis
from models.datasets import data_dir, load_sepsis
from streamer.config import Settings
from streamer.inference.stage import InferenceStage
from tests.inference.test_stage import HOUR_MS, T0_MS, numerics_windows

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tree_weights(tmp_path_factory):
    """A small tree model saved as the 'sepsis' checkpoint next to copies of the shipped af/anomaly."""
    out = tmp_path_factory.mktemp("weights")
    for name in ("af", "anomaly"):
        for suffix in (".pt", ".json"):
            shutil.copy(checkpoint.WEIGHTS_DIR / f"{name}{suffix}", out / f"{name}{suffix}")
    shipped = checkpoint.load_meta("sepsis")
    mean, std = np.asarray(shipped["norm_mean"]), np.asarray(shipped["norm_std"])
    patients = load_sepsis(data_dir() / "challenge2019_sepsis", limit=300)
    x = np.concatenate([sepsis.tree_features(v) for v in sepsis.encode(patients, mean, std)])
    y = np.concatenate([p.labels for p in patients])
    trees = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(x, y)
    meta = {
        "norm_mean": shipped["norm_mean"],
        "norm_std": shipped["norm_std"],
        "thresholds": {"decision": 0.1},
    }
    checkpoint.save_estimator("sepsis", trees, meta, out)
    return out, load_sepsis(data_dir() / "challenge2019_sepsis", limit=400)[300:306]


def test_tree_stream_equals_offline(tree_weights) -> None:
    weights, patients = tree_weights
    stage = InferenceStage(Settings(device="cpu"), weights_dir=weights)
    assert not stage.load_errors
    states: dict[str, dict] = {}
    windows = numerics_windows(patients)
    scores = []
    for s in range(0, len(windows), 29):
        scores += [r for r in stage.run(windows[s : s + 29], states).scores if r.model.name == "sepsis"]
    probs, meta = sepsis.predict_stays([p.vitals for p in patients], weights)
    assert meta["kind"] == "trees"
    for d in range(len(patients)):
        got = [r for r in scores if r.device_id == f"dev{d}"]
        np.testing.assert_allclose([r.score for r in got], probs[d][:-1], rtol=1e-5, atol=1e-6)
        assert got[0].ts_ms == T0_MS + HOUR_MS
        assert all(r.model.version == meta["version"] for r in got)


def test_tampered_pickle_is_never_unpickled(tree_weights, tmp_path) -> None:
    weights, _ = tree_weights
    shutil.copy(weights / "sepsis.json", tmp_path / "sepsis.json")
    (tmp_path / "sepsis.pkl").write_bytes(b"not the shipped file")
    with pytest.raises(checkpoint.CheckpointError, match="SHA-256"):
        checkpoint.load_estimator("sepsis", tmp_path)


def test_auroc_by_unit_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    units = [rng.integers(0, 2, int(rng.integers(1, 40))) for _ in range(60)]
    scores = [np.round(rng.random(len(u)) + 0.4 * u, 1) for u in units]  # rounding makes ties
    value, (lo, hi) = metrics.auroc_by_unit(units, scores, seed=0, n=200)
    assert value == pytest.approx(metrics.safe_auroc(np.concatenate(units), np.concatenate(scores)), abs=1e-12)
    assert lo < value < hi
