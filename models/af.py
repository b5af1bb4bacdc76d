"""Atrial fibrillation from RR intervals of our own beat detector (Challenge 2017 + MIT-BIH rhythms)."""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import checkpoint, metrics
from models.datasets import (
    AF_CLASSES,
    MITDB_TEST_RECORDS,
    REPO_ROOT,
    RRSequence,
    challenge2017_labels,
    files_sha256,
    load_challenge2017,
    load_mitdb,
    split_ids,
)
from models.features import N_RR_INPUTS, rr_inputs
from models.gru import GRUConfig, GRUNet, build
from models.train import fit, predict, seed_everything

log = logging.getLogger(__name__)

NAME = "af"
SEED = 2017
A = AF_CLASSES.index("A")
NOISY = AF_CLASSES.index("~")
WARMUP_BEATS = 5  # the first few intervals carry no rhythm information: not scored in training
MITDB_CHUNK_BEATS = 240


def _detector_sha() -> str:
    src = [REPO_ROOT / "streamer" / "signals" / f for f in ("beats.py", "ecg_beats.py", "filters.py")]
    return hashlib.sha256(b"".join(p.read_bytes() for p in src if p.exists())).hexdigest()[:12]


def load_rr(data: Path, names: Sequence[str] | None, mitdb: Sequence[str]) -> tuple[list, list]:
    """Challenge 2017 and MIT-BIH RR sequences, cached under var/ by detector source hash."""
    key = hashlib.sha256(f"{data.resolve()}|{names}|{mitdb}|{_detector_sha()}".encode()).hexdigest()[:16]
    cache = REPO_ROOT / "var" / "cache" / f"af_rr_{key}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    result = (load_challenge2017(data / "challenge2017_af", names), load_mitdb(data / "mitdb", mitdb))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(result))
    return result


def _items(seqs: Sequence[RRSequence], class_weight: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-step targets [class, weight]; MIT-BIH records cut into chunks with per-beat rhythm labels."""
    items = []
    for s in seqs:
        if len(s.rr_ms) < 2:
            continue
        labels = s.beat_labels if s.beat_labels is not None else np.full(len(s.rr_ms), s.label)
        for lo in range(0, len(s.rr_ms), MITDB_CHUNK_BEATS if s.beat_labels is not None else len(s.rr_ms)):
            rr, y = s.rr_ms[lo : lo + MITDB_CHUNK_BEATS], labels[lo : lo + MITDB_CHUNK_BEATS]
            w = class_weight[y] * (np.arange(len(y)) >= WARMUP_BEATS)
            items.append((rr_inputs(rr, None), np.stack([y, w], axis=1).astype(np.float32)))
    return items


def _cross_entropy(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_step = torch.nn.functional.cross_entropy(out.transpose(1, 2), y[..., 0].long(), reduction="none")
    w = y[..., 1] * mask
    return (per_step * w).sum() / w.sum().clamp_min(1e-6)


def record_probs(model: GRUNet, seqs: Sequence[RRSequence]) -> np.ndarray:
    """Class probabilities at each recording's last interval (the streaming read-out). (N, 4)."""
    usable = [i for i, s in enumerate(seqs) if len(s.rr_ms) >= 2]
    probs = np.tile(np.eye(len(AF_CLASSES))[NOISY], (len(seqs), 1))  # too few beats: call it noisy
    outs = predict(model, [rr_inputs(seqs[i].rr_ms, None) for i in usable])
    for i, o in zip(usable, outs, strict=True):
        p = np.exp(o[-1] - o[-1].max())
        probs[i] = p / p.sum()
    return probs


def challenge_scores(labels: np.ndarray, probs: np.ndarray, seed: int = SEED) -> dict[str, Any]:
    """AF F1 and the challenge's mean F1 over N, A, O, with record-level bootstrap CIs."""
    pred = probs.argmax(axis=1)

    def f1_af(idx: np.ndarray) -> float:
        return float(metrics.f1_per_class(labels[idx], pred[idx], len(AF_CLASSES))[A])

    def f1_nao(idx: np.ndarray) -> float:
        return float(metrics.f1_per_class(labels[idx], pred[idx], len(AF_CLASSES))[:3].mean())

    everyone = np.arange(len(labels))
    confusion = np.zeros((len(AF_CLASSES), len(AF_CLASSES)), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    return {
        "n_records": len(labels),
        "f1_af": metrics.with_ci(f1_af(everyone), metrics.bootstrap_ci(f1_af, len(labels), seed)),
        "f1_mean_nao": metrics.with_ci(f1_nao(everyone), metrics.bootstrap_ci(f1_nao, len(labels), seed)),
        "f1_per_class": dict(zip(AF_CLASSES, np.round(metrics.f1_per_class(labels, pred, 4), 4).tolist(), strict=True)),
        "confusion_rows_true_cols_pred": confusion.tolist(),
        "auroc_af_vs_rest": round(metrics.safe_auroc((labels == A).astype(int), probs[:, A]), 4),
    }


def beat_scores(model: GRUNet, records: Sequence[RRSequence], threshold: float) -> dict[str, Any]:
    """Streaming read-out on whole MIT-BIH records: each interval's P(AF) against its annotated rhythm."""
    outs = predict(model, [rr_inputs(r.rr_ms, None) for r in records])
    y = np.concatenate([r.beat_labels == A for r in records])
    p = np.concatenate([np.exp(o[:, A]) / np.exp(o).sum(axis=1) for o in outs])
    hit = p >= threshold
    return {
        "records": [r.name for r in records],
        "n_intervals": int(len(y)),
        "n_af_intervals": int(y.sum()),
        "sensitivity": round(float(hit[y].mean()), 4) if y.any() else None,
        "specificity": round(float((~hit[~y]).mean()), 4),
        "auroc": round(metrics.safe_auroc(y, p), 4),
    }


def best_af_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    grid = np.linspace(0.05, 0.95, 91)
    f1 = [metrics.f1_per_class((labels == A).astype(int), (probs[:, A] >= g).astype(int), 2)[1] for g in grid]
    return round(float(grid[int(np.argmax(f1))]), 4)


def train(data: Path, weights_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Fit on training recordings (+ MIT-BIH training records), select on validation, report test."""
    seed_everything(SEED)
    labels = challenge2017_labels(data / "challenge2017_af")
    names = sorted(labels)[:60] if quick else sorted(labels)
    split = split_ids(names, [labels[n] for n in names], SEED)
    mitdb_train = [] if quick else [r for r in _mitdb_records(data) if r not in MITDB_TEST_RECORDS]
    mitdb_test = [] if quick else list(MITDB_TEST_RECORDS)
    c17, mit = load_rr(data, names, mitdb_train + mitdb_test)
    by = {s.name: s for s in c17}
    parts = {k: [by[n] for n in v] for k, v in split.items()}
    y = {k: np.array([s.label for s in v]) for k, v in parts.items()}
    counts = np.bincount(y["train"], minlength=len(AF_CLASSES)) + 1
    class_weight = np.sqrt(counts.max() / counts)  # rarer rhythms weigh more, softened
    mit_train = [m for m in mit if m.name.removeprefix("mitdb") in mitdb_train]
    items = _items(parts["train"] + mit_train, class_weight)

    model = build(GRUConfig(n_inputs=N_RR_INPUTS, n_outputs=len(AF_CLASSES), n_hidden=32))
    select = lambda m: challenge_scores(y["val"], record_probs(m, parts["val"]))["f1_mean_nao"]["value"]  # noqa: E731
    model, history = fit(model, items, _cross_entropy, select, epochs=1 if quick else 40, lr=3e-3, batch_size=32)
    val_probs = record_probs(model, parts["val"])
    threshold = best_af_threshold(y["val"], val_probs)
    test_probs = record_probs(model, parts["test"])
    test = challenge_scores(y["test"], test_probs)
    # Per-record test predictions let a quick check reproduce any subset of the held-out figures.
    test["predicted_class"] = dict(zip(split["test"], test_probs.argmax(axis=1).tolist(), strict=True))
    mit_test = [m for m in mit if m.name.removeprefix("mitdb") in mitdb_test]
    meta = {
        "version_prefix": "1",
        "task": "rhythm class N/A/O/~ after each RR interval; score = P(AF)",
        "classes": list(AF_CLASSES),
        "feature_version": "rr-logratio-1",
        "beat_detector": f"streamer.signals.ecg_beats.ecg_r_peaks (source sha256 {_detector_sha()})",
        "thresholds": {"af": threshold},
        "data_sha256": files_sha256(_training_files(data, names, mitdb_train + mitdb_test), data),
        "data_files": len(names) + len(mitdb_train + mitdb_test),
        "split": {
            "seed": SEED,
            "unit": "recording",
            "stratified_by": "label",
            "fractions": [0.6, 0.2, 0.2],
            "n": {k: len(v) for k, v in split.items()},
            "test_records": split["test"],
            "mitdb_train_records": mitdb_train,
            "mitdb_test_records": mitdb_test,
        },
        "metrics": {
            "test": test,
            "val": challenge_scores(y["val"], val_probs),
            "mitdb_test_beats": beat_scores(model, mit_test, threshold) if mit_test else None,
        },
        "history": history,
        "quick": quick,
    }
    checkpoint.save(NAME, model, meta, weights_dir)
    return checkpoint.load_meta(NAME, weights_dir)


def _mitdb_records(data: Path) -> list[str]:
    return (data / "mitdb" / "RECORDS").read_text().split()


def _training_files(data: Path, names: Sequence[str], mitdb: Sequence[str]) -> list[Path]:
    c17 = [data / "challenge2017_af" / f"{n}.mat" for n in names] + [data / "challenge2017_af" / "REFERENCE.csv"]
    return c17 + [data / "mitdb" / f"{r}.{ext}" for r in mitdb for ext in ("dat", "hea", "atr")]
