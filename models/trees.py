"""A hash-checked gradient-boosted tree model behind the same ``step_batch`` API as the GRU predictor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import checkpoint
from streamer.inference.predictor import StepRequest, StepResult

_NO_STATE = np.zeros((1, 1), dtype=np.float32)  # trees have no hidden state; the adapter keeps lags


class TreePredictor:
    """Log-odds of each request's rows, all devices in one ``predict_proba`` call."""

    def __init__(self, estimator: Any, meta: dict[str, Any], name: str) -> None:
        self.estimator, self.meta, self.name = estimator, meta, name
        self.version = str(meta["version"])

    @classmethod
    def load(cls, name: str, weights_dir: Path | None = None) -> TreePredictor:
        estimator, meta = checkpoint.load_estimator(name, weights_dir)
        return cls(estimator, meta, name)

    def step_batch(self, requests: Sequence[StepRequest]) -> list[StepResult]:
        if not requests:
            return []
        rows = np.concatenate([r.x for r in requests])  # (sum T, F)
        p = np.clip(self.estimator.predict_proba(rows)[:, 1], 1e-7, 1 - 1e-7) if len(rows) else np.zeros(0)
        logit = np.log(p / (1 - p)).astype(np.float32)[:, None]
        bounds = np.cumsum([0] + [len(r.x) for r in requests])
        return [
            StepResult(r.key, logit[bounds[i] : bounds[i + 1]], _NO_STATE, self.name, self.version)
            for i, r in enumerate(requests)
        ]
