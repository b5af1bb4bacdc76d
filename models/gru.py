"""A small GRU family with an explicit hidden-state API: ``forward(x, h) -> (out, h_next)``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass(frozen=True)
class GRUConfig:
    """Hyperparameters, saved inside every checkpoint (as nanoGPT saves ``model_args``)."""

    n_inputs: int
    n_outputs: int
    n_hidden: int = 32
    n_layers: int = 1
    dropout: float = 0.0

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class GRUNet(nn.Module):
    """Input projection, a stacked GRU and a linear head applied at every step."""

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.n_inputs, config.n_hidden)
        self.gru = nn.GRU(
            config.n_hidden,
            config.n_hidden,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.n_hidden, config.n_outputs)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
        return torch.zeros(self.config.n_layers, batch_size, self.config.n_hidden, device=device)

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``x`` from state ``h``; with ``lengths`` each row stops at its own length.

        Padded steps (at or past a row's length) give zero outputs and do not touch that row's
        ``h_next``, so a padded batch equals each sequence run alone.
        """
        z = torch.tanh(self.proj(x))  # (B, T, H)
        if h is None:
            h = self.initial_state(x.shape[0], x.device)  # (L, B, H)
        if lengths is None:
            y, h_next = self.gru(z, h)  # (B, T, H), (L, B, H)
            return self.head(y), h_next  # (B, T, O)
        # Packing keeps each row's h_next at its own last step; zero-length rows keep h unchanged.
        lengths_cpu = lengths.to("cpu", torch.int64)
        live = lengths_cpu > 0
        out = torch.zeros(*x.shape[:2], self.config.n_outputs, device=x.device, dtype=x.dtype)
        h_next = h.clone()
        if not bool(live.any()):
            return out, h_next
        idx = torch.nonzero(live).squeeze(1).to(x.device)
        packed = pack_padded_sequence(z[idx], lengths_cpu[live], batch_first=True, enforce_sorted=False)
        y_packed, h_live = self.gru(packed, h[:, idx].contiguous())
        y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=x.shape[1])  # (B', T, H)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[idx, None].to(x.device)
        out[idx] = self.head(y) * mask[..., None]
        h_next[:, idx] = h_live
        return out, h_next


def build(config: GRUConfig | dict) -> GRUNet:
    """A network from a config or from the config's dict as stored in checkpoint metadata."""
    if isinstance(config, dict):
        config = GRUConfig(**config)
    return GRUNet(config)


def merge_ensemble(members: list[GRUNet]) -> GRUNet:
    """One GRUNet whose output is exactly the mean of the members' outputs (one-layer members).

    The members' hidden units sit side by side: projection rows stacked, GRU weights block-diagonal
    (a GRU gate mixes only through its weight matrices, so zero off-diagonal blocks keep members
    apart), and the head averages. Serving, state and batching stay those of a single network.
    """
    cfg = members[0].config
    if cfg.n_layers != 1 or any(m.config != cfg for m in members):
        raise ValueError("merge_ensemble needs one-layer members with the same config")
    k, h = len(members), cfg.n_hidden
    merged = GRUNet(GRUConfig(cfg.n_inputs, cfg.n_outputs, k * h, 1, cfg.dropout))
    with torch.no_grad():
        merged.proj.weight.copy_(torch.cat([m.proj.weight for m in members]))
        merged.proj.bias.copy_(torch.cat([m.proj.bias for m in members]))
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            target = getattr(merged.gru, name)
            target.zero_()
            for i, m in enumerate(members):
                src = getattr(m.gru, name)  # (3h, h) or (3h,): gates r, z, n stacked
                for g in range(3):
                    rows = slice(g * k * h + i * h, g * k * h + (i + 1) * h)
                    if src.dim() == 2:
                        target[rows, i * h : (i + 1) * h] = src[g * h : (g + 1) * h]
                    else:
                        target[rows] = src[g * h : (g + 1) * h]
        merged.head.weight.copy_(torch.cat([m.head.weight for m in members], dim=1) / k)
        merged.head.bias.copy_(torch.stack([m.head.bias for m in members]).mean(dim=0))
    return merged.eval()
