"""The AF tree baseline: gradient-boosted trees on per-recording summaries of the GRU's own per-beat inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from models.features import N_AF_INPUTS

QUANTILES = (0.1, 0.5, 0.9)


def record_features(x: np.ndarray) -> np.ndarray:
    """Mean, std and 10/50/90th percentiles of each per-beat input, and the beat count. (T, C) -> (5C + 1,)."""
    if len(x) == 0:
        return np.concatenate([np.zeros(5 * N_AF_INPUTS), [0.0]])
    q = np.quantile(x, QUANTILES, axis=0).ravel()
    return np.concatenate([x.mean(axis=0), x.std(axis=0), q, [np.log1p(len(x))]])


def fit_trees(
    inputs: Sequence[np.ndarray], labels: np.ndarray, seed: int, quick: bool
) -> HistGradientBoostingClassifier:
    """Balanced-class gradient boosting on ``record_features`` of each training recording."""
    trees = HistGradientBoostingClassifier(
        max_iter=20 if quick else 300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        class_weight="balanced",
        random_state=seed,
    )
    return trees.fit(np.stack([record_features(x) for x in inputs]), labels)


def tree_probs(trees: HistGradientBoostingClassifier, inputs: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Class probabilities of each recording, columns in class-index order. (N, n_classes)."""
    p = trees.predict_proba(np.stack([record_features(x) for x in inputs]))
    out = np.zeros((len(inputs), n_classes))
    out[:, trees.classes_.astype(int)] = p
    return out
