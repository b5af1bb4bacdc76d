"""Training: one reproducible command per model (`python -m models.train NAME`, `vitalstream train NAME`)."""

from __future__ import annotations

import copy
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import WEIGHTS_DIR
from models.gru import GRUNet

log = logging.getLogger(__name__)

MODEL_MODULES = {"af": "models.af", "sepsis": "models.sepsis", "anomaly": "models.anomaly"}
Item = tuple[np.ndarray, np.ndarray]  # inputs (T, C), targets (T, ...) of one sequence
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)  # the training machine is shared; 1 thread keeps runs reproducible too


def collate(items: Sequence[Item]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad to the longest sequence: x (B, T, C), y (B, T, ...), mask (B, T), lengths (B,)."""
    lengths = torch.tensor([len(x) for x, _ in items])
    t_max = int(lengths.max())
    x = torch.zeros(len(items), t_max, items[0][0].shape[1])
    y = torch.zeros(len(items), t_max, *items[0][1].shape[1:])
    for i, (xi, yi) in enumerate(items):
        x[i, : len(xi)] = torch.from_numpy(xi)
        y[i, : len(yi)] = torch.from_numpy(np.asarray(yi, dtype=np.float32))
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    return x, y, mask, lengths


def fit(
    model: GRUNet,
    items: Sequence[Item],
    loss_fn: LossFn,
    select: Callable[[GRUNet], float],
    *,
    epochs: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[GRUNet, list[dict[str, float]]]:
    """Adam over length-bucketed batches; keeps the epoch whose ``select`` (validation) score is best."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_score, history = copy.deepcopy(model.state_dict()), -np.inf, []
    for epoch in range(epochs):
        model.train()
        start, losses = time.monotonic(), []
        for batch in _batches(items, batch_size, rng):
            x, y, mask, lengths = collate(batch)
            out, _ = model(x, lengths=lengths)  # (B, T, O)
            loss = loss_fn(out, y, mask)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        score = float(select(model))
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_score": score})
        log.info("epoch %d loss %.4f val %.4f (%.1f s)", epoch, np.mean(losses), score, time.monotonic() - start)
        if score > best_score:
            best, best_score = copy.deepcopy(model.state_dict()), score
    model.load_state_dict(best)
    return model.eval(), history


def _batches(items: Sequence[Item], batch_size: int, rng: np.random.Generator):
    """Shuffle, then sort within chunks of 20 batches by length so padding stays small."""
    order = rng.permutation(len(items))
    chunk = batch_size * 20
    batches = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(items[i][0]))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    for b in rng.permutation(len(batches)):
        yield [items[i] for i in batches[b]]


@torch.inference_mode()
def predict(model: GRUNet, inputs: Sequence[np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
    """Per-step outputs (T, O) of each whole sequence, from a zero state."""
    outs: list[np.ndarray] = []
    for s in range(0, len(inputs), batch_size):
        chunk = inputs[s : s + batch_size]
        x, _, _, lengths = collate([(xi, np.zeros((len(xi), 1))) for xi in chunk])
        out, _ = model(x, lengths=lengths)
        outs += [out[i, : len(xi)].numpy() for i, xi in enumerate(chunk)]
    return outs


def run(name: str, data: Path | None, weights_dir: Path, quick: bool) -> dict:
    """Train one model by name; returns its metadata."""
    from models import cards, metrics
    from models.datasets import data_dir

    module = importlib.import_module(MODEL_MODULES[name])
    n_bootstrap = metrics.N_BOOTSTRAP
    if quick:  # a smoke run of the command: small bootstrap, and no card next to the shipped ones
        metrics.N_BOOTSTRAP = 50
    try:
        meta = module.train(data or data_dir(), weights_dir, quick=quick)
    finally:
        metrics.N_BOOTSTRAP = n_bootstrap
    if not quick:
        cards.write(name, weights_dir, cards.CARDS_DIR if weights_dir == WEIGHTS_DIR else weights_dir)
    return meta


if __name__ == "__main__":  # `python -m models.train NAME` (the cards' reproduce line) is `vitalstream train NAME`
    import sys

    from streamer.cli.main import main

    sys.exit(main(["train", *sys.argv[1:]]))
