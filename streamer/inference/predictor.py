"""A loaded checkpoint that advances many devices' hidden states in one padded batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import checkpoint
from streamer.inference import kernel


@dataclass(frozen=True)
class StepRequest:
    """New input steps of one device (or device-signal) and the hidden state they continue from."""

    key: str
    x: np.ndarray  # (T, C), T >= 0
    h: np.ndarray | None = None  # (L, H); None starts from zeros


@dataclass(frozen=True)
class StepResult:
    key: str
    out: np.ndarray  # (T, O) outputs of the new steps
    h: np.ndarray  # (L, H) hidden state after the last new step
    model: str
    version: str


def resolve_device(setting: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but no CUDA device is available")
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


class Predictor:
    """Gather hidden states into a batch, run once under inference_mode, scatter them back."""

    def __init__(self, ckpt: checkpoint.Checkpoint, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        # float64 (the float32 weights widen exactly): in float32 a device's outputs moved by up to 6e-7 with the
        # other rows of its batch and the steps per call (the GEMM kernels round by shape), so a live worker and
        # an offline run of the same input differed at 1e-6; in float64 they agree to ~1e-15.
        self.model = ckpt.model.to(self.device, dtype=torch.float64).eval()
        self.name, self.version, self.meta = ckpt.name, ckpt.version, ckpt.meta
        self.config = ckpt.model.config
        # On the CPU every device is stepped alone by a fixed-order kernel (streamer.inference.kernel), so its
        # outputs do not depend on the batch at all and a replay re-sends the same bytes; CUDA keeps the batched
        # torch path, whose cuBLAS results may still move in the last bits with the batch shape.
        self.weights = kernel.KernelWeights.of(self.model) if self.device.type == "cpu" else None
        if self.weights is not None:  # compile (or load from numba's cache) now, not inside the first batch
            cfg = self.config
            kernel.step_rows(self.weights, [np.zeros((1, cfg.n_inputs))], np.zeros((1, cfg.n_layers, cfg.n_hidden)))

    @classmethod
    def load(cls, name: str, weights_dir: Path | None = None, device: str = "auto") -> Predictor:
        return cls(checkpoint.load(name, weights_dir), resolve_device(device))

    @property
    def thresholds(self) -> dict[str, Any]:
        return dict(self.meta.get("thresholds", {}))

    def step_batch(self, requests: Sequence[StepRequest]) -> list[StepResult]:
        """Advance every request by its own number of steps; one request per key in a batch."""
        if not requests:
            return []
        cfg = self.config
        if self.weights is not None:
            hs = np.zeros((len(requests), cfg.n_layers, cfg.n_hidden), dtype=np.float64)
            for i, r in enumerate(requests):
                if r.h is not None:
                    hs[i] = r.h
            outs, h_next = kernel.step_rows(self.weights, [r.x for r in requests], hs)
            return [StepResult(r.key, outs[i], h_next[i], self.name, self.version) for i, r in enumerate(requests)]
        lengths = torch.tensor([len(r.x) for r in requests])
        t_max = max(int(lengths.max()), 1)
        x = np.zeros((len(requests), t_max, cfg.n_inputs), dtype=np.float64)  # (B, T, C)
        h = np.zeros((cfg.n_layers, len(requests), cfg.n_hidden), dtype=np.float64)  # (L, B, H)
        for i, r in enumerate(requests):
            x[i, : len(r.x)] = r.x
            if r.h is not None:
                h[:, i] = r.h
        with torch.inference_mode():
            out, h_next = self.model(torch.from_numpy(x).to(self.device), torch.from_numpy(h).to(self.device), lengths)
            out_np, h_np = out.cpu().numpy(), h_next.cpu().numpy()  # (B, T, O), (L, B, H)
        return [
            StepResult(r.key, out_np[i, : len(r.x)].copy(), h_np[:, i].copy(), self.name, self.version)
            for i, r in enumerate(requests)
        ]
