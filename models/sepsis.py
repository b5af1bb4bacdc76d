"""Sepsis (deterioration) risk from hourly vitals: GRU against a gradient-boosted tree baseline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from models import checkpoint, metrics
from models.datasets import Patient, files_sha256, load_sepsis, sepsis_files, split_ids
from models.features import N_TREND_INPUTS, VITALS, TrendState, clean_vitals, trend_inputs
from models.gru import GRUConfig, GRUNet, build, merge_ensemble
from models.train import fit, predict, seed_everything
from models.utility import best_predictions, hourly_utilities

log = logging.getLogger(__name__)

NAME = "sepsis"
SEED = 2019
TREE_LAGS_H = (1, 3, 6)


N_INPUTS = N_TREND_INPUTS + 1
HOURS_SCALE = 100.0
N_HIDDEN = 32
EPOCHS = 40  # each member keeps its best validation-AUROC epoch (10 stopped 2 of 3 members while still rising)
N_MEMBERS = 3


def with_hours(x: np.ndarray, first_hour: int) -> np.ndarray:
    """Append hours since the stream began (ICU length of stay in training), scaled. (T, C) -> (T, C + 1)."""
    hours = (first_hour + np.arange(len(x), dtype=np.float32))[:, None] / HOURS_SCALE
    return np.concatenate([x, hours], axis=1).astype(np.float32)


def encode(patients: Sequence[Patient], mean: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """Model inputs (T, 36) of each whole stay, from an empty carried state."""
    return [with_hours(trend_inputs(p.vitals, TrendState.empty(), mean, std)[0], 0) for p in patients]


def tree_features(x: np.ndarray) -> np.ndarray:
    """The GRU's hourly inputs plus what a memoryless model needs: changes over 1, 3 and 6 h. (T, 57)."""
    z = x[:, : len(VITALS)]  # (T, 7) carried-forward z-scores
    lags = [z - np.concatenate([np.repeat(z[:1], k, axis=0), z[:-k]])[: len(z)] for k in TREE_LAGS_H]
    return np.concatenate([x, *lags], axis=1)


def best_threshold(labels: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> float:
    """The probability cut-off that maximises the normalised utility (used on validation patients)."""
    u = [hourly_utilities(y) for y in labels]
    u_pos, u_neg = np.concatenate([a for a, _ in u]), np.concatenate([b for _, b in u])
    p = np.concatenate(probs)
    best = sum(float(np.where(best_predictions(y), *hourly_utilities(y)).sum()) for y in labels)
    inaction = float(u_neg.sum())
    candidates = np.unique(np.quantile(p, np.linspace(0.5, 0.999, 200)))
    scores = [(np.where(p >= c, u_pos, u_neg).sum() - inaction) / (best - inaction) for c in candidates]
    return float(candidates[int(np.argmax(scores))])


def score_patients(
    labels: Sequence[np.ndarray], probs: Sequence[np.ndarray], threshold: float, seed: int = SEED
) -> dict[str, Any]:
    """AUROC over patient-hours and normalised utility, each with a patient-level bootstrap CI."""
    per = []
    for y, p in zip(labels, probs, strict=True):
        u_pos, u_neg = hourly_utilities(y)
        per.append(
            (
                np.where(p >= threshold, u_pos, u_neg).sum(),
                np.where(best_predictions(y), u_pos, u_neg).sum(),
                u_neg.sum(),
            )
        )
    obs, best, none = (np.array(c) for c in zip(*per, strict=True))

    def utility(idx: np.ndarray) -> float:
        gain = best[idx].sum() - none[idx].sum()
        return float((obs[idx].sum() - none[idx].sum()) / gain) if gain > 0 else float("nan")

    everyone = np.arange(len(labels))
    return {
        "n_patients": len(labels),
        "n_septic": int(sum(y.any() for y in labels)),
        "n_hours": int(sum(len(y) for y in labels)),
        "auroc": metrics.with_ci(*metrics.auroc_by_unit(list(labels), list(probs), seed)),
        "utility": metrics.with_ci(utility(everyone), metrics.bootstrap_ci(utility, len(labels), seed)),
        "threshold": threshold,
    }


def gru_probs(model: GRUNet, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [1.0 / (1.0 + np.exp(-o[:, 0])) for o in predict(model, inputs)]


def _bce(pos_weight: float):
    weight = torch.tensor(pos_weight)

    def loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_step = torch.nn.functional.binary_cross_entropy_with_logits(
            out[..., 0], y[..., 0], pos_weight=weight, reduction="none"
        )
        return (per_step * mask).sum() / mask.sum()

    return loss


# The training settings compared on validation patients before version 3 was trained (docs/RESULTS.md, "Sepsis
# version 3, how it was chosen"): `python -m models.sepsis variants` scores them again, test patients untouched.
VARIANTS_V3: dict[str, dict[str, Any]] = {
    "A": {"epochs": 40},
    "B": {"epochs": 40, "n_hidden": 64},
    "C": {"epochs": 60, "lr": 1e-3},
    "D": {"epochs": 40, "members": 5},
}


@dataclass
class _Prepared:
    folder: Path
    patients: list[Patient]
    split: dict[str, list[str]]
    mean: np.ndarray
    std: np.ndarray
    x: dict[str, list[np.ndarray]]  # model inputs of each stay, by part of the split
    y: dict[str, list[np.ndarray]]

    @property
    def items(self) -> list:
        return [(xi, yi[:, None]) for xi, yi in zip(self.x["train"], self.y["train"], strict=True)]

    @property
    def pos_weight(self) -> float:
        pos = float(np.concatenate(self.y["train"]).mean())
        return min(20.0, (1 - pos) / pos)


def _prepare(data: Path, quick: bool) -> _Prepared:
    """The seeded patient split, training-split normalisation and every stay's inputs and labels."""
    seed_everything(SEED)
    folder = data / "challenge2019_sepsis"
    patients = load_sepsis(folder, limit=150 if quick else None)
    names = [p.name for p in patients]
    split = split_ids(names, ["septic" if p.labels.any() else "non" for p in patients], SEED)
    by = {p.name: p for p in patients}
    parts = {k: [by[n] for n in v] for k, v in split.items()}
    train_v = clean_vitals(np.concatenate([p.vitals for p in parts["train"]]))
    mean, std = np.nanmean(train_v, axis=0), np.nanstd(train_v, axis=0) + 1e-6
    x = {k: encode(v, mean, std) for k, v in parts.items()}
    y = {k: [p.labels.astype(np.float32) for p in v] for k, v in parts.items()}
    return _Prepared(folder, patients, split, mean, std, x, y)


def _fit_ensemble(
    d: _Prepared,
    *,
    epochs: int = EPOCHS,
    members: int = N_MEMBERS,
    n_hidden: int = N_HIDDEN,
    lr: float = 3e-3,
) -> tuple[GRUNet, list]:
    """``members`` GRUs from different seeds, each at its best validation-AUROC epoch, merged into one
    network that outputs their mean logit (``models.gru.merge_ensemble``)."""
    x_val, y_val = d.x["val"], d.y["val"]
    val_auroc = lambda m: metrics.safe_auroc(np.concatenate(y_val), np.concatenate(gru_probs(m, x_val)))  # noqa: E731
    items, loss = d.items, _bce(d.pos_weight)
    fitted, history = [], []
    for k in range(members):
        torch.manual_seed(SEED + k)
        member = build(GRUConfig(n_inputs=N_INPUTS, n_outputs=1, n_hidden=n_hidden))
        member, h = fit(member, items, loss, val_auroc, epochs=epochs, lr=lr, seed=k)
        fitted.append(member)
        history.append(h)
    return merge_ensemble(fitted), history


def compare_variants(data: Path, variants: dict[str, dict[str, Any]] = VARIANTS_V3) -> dict[str, dict[str, Any]]:
    """Validation AUROC and utility (threshold chosen on validation) of each variant's ensemble; no test scoring."""
    d = _prepare(data, quick=False)
    out = {}
    for name, settings in variants.items():
        model, history = _fit_ensemble(d, **settings)
        probs = gru_probs(model, d.x["val"])
        out[name] = {
            "settings": settings,
            "val": score_patients(d.y["val"], probs, best_threshold(d.y["val"], probs)),
            "best_epochs": [max(range(len(h)), key=lambda i: h[i]["val_score"]) for h in history],
        }
        log.info("variant %s: %s", name, out[name])
    return out


def train(data: Path, weights_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Fit GRU and trees on the training patients, pick by validation utility, report test patients."""
    d = _prepare(data, quick)
    folder, patients, split, mean, std, x, y = d.folder, d.patients, d.split, d.mean, d.std, d.x, d.y
    model, history = _fit_ensemble(d, epochs=1, members=1) if quick else _fit_ensemble(d)
    gru = {k: gru_probs(model, x[k]) for k in ("val", "test")}
    gru_thr = best_threshold(y["val"], gru["val"])

    trees = HistGradientBoostingClassifier(
        max_iter=20 if quick else 300,
        learning_rate=0.05,
        max_leaf_nodes=31,
        class_weight="balanced",
        random_state=SEED,
    )
    trees.fit(np.concatenate([tree_features(v) for v in x["train"]]), np.concatenate(y["train"]))
    tree = {k: [trees.predict_proba(tree_features(v))[:, 1] for v in x[k]] for k in ("val", "test")}
    tree_thr = best_threshold(y["val"], tree["val"])

    results = {}
    for label, probs, thr in (("gru", gru, gru_thr), ("trees", tree, tree_thr)):
        results[label] = {
            "val": score_patients(y["val"], probs["val"], thr),
            "test": score_patients(y["test"], probs["test"], thr),
        }
        log.info("%s: val %s test %s", label, results[label]["val"]["utility"], results[label]["test"]["utility"])
    winner = max(results, key=lambda k: results[k]["val"]["utility"]["value"])
    meta = {
        "version_prefix": "3",
        "task": "P(SepsisLabel = 1) each hour from hourly vitals",
        "served": winner,
        "selection": "the model with the higher normalised utility on validation patients is shipped",
        "feature_version": "vitals-locf-age-ema4-ema24-hours-2" + ("+lags-1-3-6" if winner == "trees" else ""),
        "inputs": list(VITALS),
        "norm_mean": mean.tolist(),
        "norm_std": std.tolist(),
        "thresholds": {"decision": tree_thr if winner == "trees" else gru_thr},
        "data_sha256": files_sha256(sepsis_files(folder)[: len(patients)], folder),
        "data_files": len(patients),
        "split": {
            "seed": SEED,
            "unit": "patient",
            "stratified_by": "septic",
            "fractions": [0.6, 0.2, 0.2],
            "n": {k: len(v) for k, v in split.items()},
            "test_patients": split["test"],
        },
        "metrics": {"test": results[winner]["test"], "val": results[winner]["val"], "comparison": results},
        "gru_config": model.config.to_dict(),
        "gru_ensemble": f"{len(history)} GRUs of {N_HIDDEN} units (seeds {SEED}..{SEED + len(history) - 1}), "
        "each at its best validation-AUROC epoch, merged block-diagonally into one network (mean logit)",
        "gru_history": history,
        "quick": quick,
    }
    if winner == "trees":
        checkpoint.save_estimator(NAME, trees, meta, weights_dir)
    else:
        checkpoint.save(NAME, model, meta, weights_dir)
    return checkpoint.load_meta(NAME, weights_dir)


def predict_stays(vitals: Sequence[np.ndarray], weights_dir: Path | None = None) -> tuple[list[np.ndarray], dict]:
    """Hourly probabilities of whole stays from the shipped model (GRU or trees), and its metadata."""
    meta = checkpoint.load_meta(NAME, weights_dir)
    mean, std = np.asarray(meta["norm_mean"]), np.asarray(meta["norm_std"])
    x = [with_hours(trend_inputs(v, TrendState.empty(), mean, std)[0], 0) for v in vitals]
    if meta.get("kind") == "trees":
        trees, _ = checkpoint.load_estimator(NAME, weights_dir)
        return [trees.predict_proba(tree_features(xi))[:, 1] for xi in x], meta
    return gru_probs(checkpoint.load(NAME, weights_dir).model, x), meta


if __name__ == "__main__":  # `python -m models.sepsis variants`: the validation comparison behind version 3
    import json
    import sys

    from models.datasets import data_dir

    if sys.argv[1:] != ["variants"]:
        sys.exit("usage: python -m models.sepsis variants")
    logging.basicConfig(level=logging.INFO)
    sys.stdout.write(json.dumps(compare_variants(data_dir()), indent=2) + "\n")
