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
from models.af_baseline import fit_trees, tree_probs
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
from models.features import N_AF_INPUTS, af_inputs
from models.gru import GRUConfig, GRUNet, build, merge_ensemble
from models.train import fit, predict, seed_everything
from streamer.features.morphology import MORPH_NAMES

log = logging.getLogger(__name__)

NAME = "af"
SEED = 2017
A = AF_CLASSES.index("A")
OTHER = AF_CLASSES.index("O")
NOISY = AF_CLASSES.index("~")
N_HIDDEN = 32
EPOCHS = 25
RR_ONLY_SHARE = 0.25  # sequences also trained without morphology (the PPG path)
WARMUP_BEATS = 5  # the first few intervals carry no rhythm information: not scored in training
MITDB_CHUNK_BEATS = 240
# What version 3 was chosen over, on validation before test (models/weights/af.json of version 2).
PREVIOUS_VERSION = {"version": "2-2d40f8a7", "val_f1_mean_nao": 0.775, "test_f1_mean_nao": 0.704, "test_f1_af": 0.699}
N_MEMBERS = 5  # GRUs from seeds SEED, SEED + 1, ... merged into one network (models.gru.merge_ensemble)


def _detector_sha() -> str:
    src = [REPO_ROOT / "streamer" / "signals" / f for f in ("beats.py", "ecg_beats.py", "filters.py")]
    src.append(REPO_ROOT / "streamer" / "features" / "morphology.py")
    return hashlib.sha256(b"".join(p.read_bytes() for p in src if p.exists())).hexdigest()[:12]


def load_rr(data: Path, names: Sequence[str] | None, mitdb: Sequence[str]) -> tuple[list, list]:
    """Challenge 2017 and MIT-BIH RR sequences with beat morphology, cached under var/ by detector source hash."""
    key = hashlib.sha256(f"{data.resolve()}|{names}|{mitdb}|{_detector_sha()}".encode()).hexdigest()[:16]
    cache = REPO_ROOT / "var" / "cache" / f"af_beats_{key}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())  # noqa: S301 - our own cache file, keyed by source hash
    result = (load_challenge2017(data / "challenge2017_af", names), load_mitdb(data / "mitdb", mitdb))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(result))
    return result


def inputs_of(s: RRSequence, with_morph: bool = True) -> np.ndarray:
    """The model inputs of a whole sequence: RR features beside each beat's morphology. (T, N_AF_INPUTS).

    The RR features come first, so a version-1 (RR-only) network reads the first N_RR_INPUTS columns.
    """
    return af_inputs(s.rr_ms, None, s.morph if with_morph else None)


def _items(
    seqs: Sequence[RRSequence], class_weight: np.ndarray, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-step targets [class, weight]; MIT-BIH records cut into chunks with per-beat rhythm labels.

    A share of sequences is added a second time without morphology, so the same network serves
    PPG pulse intervals (no ECG) with the RR inputs alone.
    """
    items = []
    for s in seqs:
        if len(s.rr_ms) < 2:
            continue
        labels = s.beat_labels if s.beat_labels is not None else np.full(len(s.rr_ms), s.label)
        step = MITDB_CHUNK_BEATS if s.beat_labels is not None else len(s.rr_ms)
        for with_morph in (True, False) if rng.random() < RR_ONLY_SHARE else (True,):
            x_all = inputs_of(s, with_morph)
            for lo in range(0, len(s.rr_ms), step):
                x, y = x_all[lo : lo + step], labels[lo : lo + step]
                w = class_weight[y] * (np.arange(len(y)) >= WARMUP_BEATS)
                items.append((x, np.stack([y, w], axis=1).astype(np.float32)))
    return items


def _cross_entropy(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_step = torch.nn.functional.cross_entropy(out.transpose(1, 2), y[..., 0].long(), reduction="none")
    w = y[..., 1] * mask
    return (per_step * w).sum() / w.sum().clamp_min(1e-6)


def record_probs(model: GRUNet, seqs: Sequence[RRSequence], with_morph: bool = True) -> np.ndarray:
    """Class probabilities at each recording's last interval (the streaming read-out). (N, 4)."""
    usable = [i for i, s in enumerate(seqs) if len(s.rr_ms) >= 2]
    probs = np.tile(np.eye(len(AF_CLASSES))[NOISY], (len(seqs), 1))  # too few beats: call it noisy
    outs = predict(model, [inputs_of(seqs[i], with_morph)[:, : model.config.n_inputs] for i in usable])
    for i, o in zip(usable, outs, strict=True):
        p = np.exp(o[-1] - o[-1].max())
        probs[i] = p / p.sum()
    return probs


def decide(probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """AF where P(AF) >= the AF threshold (what the stream alerts on), else the likeliest of N, O, ~
    after the validation-tuned log-odds offsets for O and ~. (N, 4) -> (N,).

    Version-1 checkpoints (RR only, thresholds without offsets) decide by the plain argmax.
    """
    if "bias_o" not in thresholds:
        return probs.argmax(axis=1)
    logp = np.log(np.clip(probs, 1e-9, 1.0))
    logp[:, OTHER] += thresholds.get("bias_o", 0.0)
    logp[:, NOISY] += thresholds.get("bias_noisy", 0.0)
    logp[:, A] = -np.inf
    return np.where(probs[:, A] >= thresholds["af"], A, logp.argmax(axis=1))


def _f1_by_class(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 of each class from one confusion count (0 where a class is neither true nor predicted)."""
    k = len(AF_CLASSES)
    confusion = np.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    denom = confusion.sum(axis=0) + confusion.sum(axis=1)
    return np.where(denom > 0, 2 * np.diag(confusion) / np.maximum(denom, 1), 0.0)


def _mean_f1_nao(labels: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over N, A, O (the tuning grid and the bootstrap call this thousands of times)."""
    return float(_f1_by_class(labels, pred)[:3].mean())


def tune_decision(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The AF threshold and O / ~ offsets with the best mean F1 (N, A, O) on these (validation) recordings."""
    best, best_f1 = {"af": 0.5, "bias_o": 0.0, "bias_noisy": 0.0}, -1.0
    for t_af in np.arange(0.15, 0.86, 0.05):
        for b_o in np.arange(-1.0, 1.51, 0.25):
            for b_n in np.arange(-1.0, 2.01, 0.5):
                cand = {"af": round(float(t_af), 2), "bias_o": float(b_o), "bias_noisy": float(b_n)}
                f1 = _mean_f1_nao(labels, decide(probs, cand))
                if f1 > best_f1 + 1e-9:
                    best, best_f1 = cand, f1
    return best


def challenge_scores(
    labels: np.ndarray, probs: np.ndarray, thresholds: dict[str, float], seed: int = SEED
) -> dict[str, Any]:
    """AF F1 and the challenge's mean F1 over N, A, O of ``decide``, with record-level bootstrap CIs."""
    pred = decide(probs, thresholds)

    def f1_af(idx: np.ndarray) -> float:
        return float(_f1_by_class(labels[idx], pred[idx])[A])

    def f1_nao(idx: np.ndarray) -> float:
        return _mean_f1_nao(labels[idx], pred[idx])

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
        "predicted_class": pred.tolist(),
    }


def beat_scores(model: GRUNet, records: Sequence[RRSequence], threshold: float) -> dict[str, Any]:
    """Streaming read-out on whole MIT-BIH records: each interval's P(AF) against its annotated rhythm."""
    outs = predict(model, [inputs_of(r)[:, : model.config.n_inputs] for r in records])
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


def _argmax_f1(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean F1 (N, A, O) of the plain argmax: the epoch-selection score, before any tuning."""
    return _mean_f1_nao(labels, probs.argmax(axis=1))


def _fit_gru(parts: dict, y: dict, mit_train: list, quick: bool) -> tuple[GRUNet, list]:
    """``N_MEMBERS`` GRUs, each at its best validation epoch, merged into one network (their mean logit).

    Members differ only in their initial weights and batch order; the first is the single GRU of version 2.
    """
    counts = np.bincount(y["train"], minlength=len(AF_CLASSES)) + 1
    class_weight = np.sqrt(counts.max() / counts)  # rarer rhythms weigh more, softened
    items = _items(parts["train"] + mit_train, class_weight, np.random.default_rng(SEED))
    select = lambda m: _argmax_f1(y["val"], record_probs(m, parts["val"]))  # noqa: E731
    members, history = [], []
    for k in range(1 if quick else N_MEMBERS):
        torch.manual_seed(SEED + k)
        model = build(GRUConfig(n_inputs=N_AF_INPUTS, n_outputs=len(AF_CLASSES), n_hidden=N_HIDDEN))
        epochs = 1 if quick else EPOCHS
        member, h = fit(model, items, _cross_entropy, select, epochs=epochs, lr=3e-3, batch_size=32, seed=k)
        members.append(member)
        history += [{"member": k, **e} for e in h]
    return (members[0] if len(members) == 1 else merge_ensemble(members)), history


def _baseline(parts: dict, y: dict, quick: bool) -> dict[str, Any]:
    """Trees on the same per-beat inputs (summarised per recording), tuned and scored like the GRU."""
    x = {k: [inputs_of(s) for s in v] for k, v in parts.items()}
    trees = fit_trees(x["train"], y["train"], SEED, quick)
    probs = {k: tree_probs(trees, x[k], len(AF_CLASSES)) for k in ("val", "test")}
    thr = tune_decision(y["val"], probs["val"])
    return {"thresholds": thr, **{k: _public(challenge_scores(y[k], probs[k], thr)) for k in probs}}


def _public(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if k != "predicted_class"}


def train(data: Path, weights_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Fit on training recordings (+ MIT-BIH training records), select and tune on validation, report test."""
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
    mit_train = [m for m in mit if m.name.removeprefix("mitdb") in mitdb_train]
    model, history = _fit_gru(parts, y, mit_train, quick)
    n_members = 1 if quick else N_MEMBERS
    probs = {k: record_probs(model, parts[k]) for k in ("val", "test")}
    thresholds = tune_decision(y["val"], probs["val"])  # chosen on validation only, before test is scored
    test = challenge_scores(y["test"], probs["test"], thresholds)
    # Per-record test predictions let a quick check reproduce any subset of the held-out figures.
    test["predicted_class"] = dict(zip(split["test"], test["predicted_class"], strict=True))
    rr_only = {k: _public(challenge_scores(y[k], record_probs(model, parts[k], False), thresholds)) for k in probs}
    mit_test = [m for m in mit if m.name.removeprefix("mitdb") in mitdb_test]
    meta = {
        "version_prefix": "3",
        "task": "rhythm class N/A/O/~ after each beat from RR intervals and ECG beat morphology; score = P(AF)",
        "classes": list(AF_CLASSES),
        "feature_version": "rr-logratio-1+morph-1",
        "inputs": ["rr_scaled", "rr_log_ratio", "rr_abs_log_ratio", *MORPH_NAMES],
        "beat_detector": f"streamer.signals.ecg_beats.ecg_r_peaks (source sha256 {_detector_sha()})",
        "thresholds": thresholds,
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
        "selection": f"each of the {n_members} members at its epoch of best "
        "validation mean F1 (argmax); then the AF threshold and the O / ~ offsets of the merged network by "
        "validation mean F1 (grid); test scored once, after both",
        "gru_ensemble": f"{n_members} GRUs of {N_HIDDEN} units (seeds {SEED}..{SEED + n_members - 1}; the first "
        "is version 2's single GRU), merged block-diagonally into one network that outputs their mean logit (models.gru.merge_ensemble)",
        "previous_version": PREVIOUS_VERSION,
        "metrics": {
            "test": test,
            "val": _public(challenge_scores(y["val"], probs["val"], thresholds)),
            "rr_only": rr_only,
            "trees": _baseline(parts, y, quick),
            "mitdb_test_beats": beat_scores(model, mit_test, thresholds["af"]) if mit_test else None,
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
