"""The AF four-class decision: the AF threshold rules, the O / ~ offsets tip the rest, tuning finds both."""

from __future__ import annotations

import numpy as np
import pytest

from models import af, metrics
from models.af_baseline import record_features, tree_probs
from models.features import N_AF_INPUTS

pytestmark = pytest.mark.unit


def test_af_threshold_decides_af_and_offsets_decide_the_rest() -> None:
    probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.45, 0.1, 0.40, 0.05], [0.3, 0.1, 0.2, 0.4]])
    plain = {"af": 0.5, "bias_o": 0.0, "bias_noisy": 0.0}
    assert af.decide(probs, plain).tolist() == [0, 0, 3]
    assert af.decide(probs, {**plain, "af": 0.25}).tolist() == [1, 0, 3]
    assert af.decide(probs, {**plain, "bias_o": 0.5}).tolist() == [0, 2, 3]
    assert af.decide(probs, {**plain, "bias_noisy": -1.0}).tolist() == [0, 0, 0]


def test_tuning_recovers_a_shifted_decision() -> None:
    """Probabilities that understate AF and O: the tuned decision beats the plain argmax on them."""
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=400, p=[0.6, 0.1, 0.25, 0.05])
    logits = rng.normal(0, 1, (400, 4))
    logits[np.arange(400), labels] += 2.5
    logits[:, 1] -= 1.5
    logits[:, 2] -= 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    thr = af.tune_decision(labels, probs)
    tuned = metrics.f1_per_class(labels, af.decide(probs, thr), 4)[:3].mean()
    plain = metrics.f1_per_class(labels, probs.argmax(axis=1), 4)[:3].mean()
    assert tuned > plain + 0.05
    assert thr["af"] < 0.5 and thr["bias_o"] > 0.0


def test_tree_baseline_features_and_class_columns() -> None:
    x = np.random.default_rng(1).normal(size=(30, N_AF_INPUTS))
    f = record_features(x)
    assert f.shape == (5 * N_AF_INPUTS + 1,) and np.isfinite(f).all()
    assert record_features(np.zeros((0, N_AF_INPUTS))).shape == f.shape

    class Only02:
        classes_ = np.array([0, 2])

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            return np.tile([0.7, 0.3], (len(rows), 1))

    p = tree_probs(Only02(), [x, x[:5]], 4)  # type: ignore[arg-type]
    assert p.tolist() == [[0.7, 0.0, 0.3, 0.0]] * 2


def test_fast_mean_f1_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    labels, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    assert af._mean_f1_nao(labels, pred) == pytest.approx(metrics.f1_per_class(labels, pred, 4)[:3].mean())
