"""A batch-invariant CPU kernel for GRUNet: every device's steps are computed alone, in one fixed order.

Why not torch on the CPU: its GRU packs the batch and its GEMMs round by shape, so a device's float64 outputs
moved in the last bits with the devices that happened to share its batch and with how many steps a call carried.
After a crash the worker replays up to a checkpoint interval of input in other batches, so re-sent scores were
not byte-identical to the first send (issue 10: 13 of them in a chaos run). Here each output element is a sum
over its inputs in index order, row by row, with no reassociation (numba without fastmath), so the result of a
device depends only on its own inputs and hidden state: a live worker, an offline run and a replay agree bit for
bit, whatever the batching.

Block-diagonal networks (``models.gru.merge_ensemble`` puts the AF ensemble's members side by side) are stepped
member by member: the zero blocks are found once at load and skipped, a fifth of the AF network's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from models.gru import GRUNet


@dataclass(frozen=True)
class KernelWeights:
    """GRUNet's parameters in float64, transposed so that the inner loops run over contiguous output units."""

    proj_t: np.ndarray  # (C, H)
    proj_b: np.ndarray  # (H,)
    ih_t: np.ndarray  # (L, H, 3H): gates r, z, n side by side as torch stacks them
    ih_b: np.ndarray  # (L, 3H)
    hh_t: np.ndarray  # (L, H, 3H)
    hh_b: np.ndarray  # (L, 3H)
    head_t: np.ndarray  # (H, O)
    head_b: np.ndarray  # (O,)
    blocks: np.ndarray  # (K + 1,) boundaries of independent hidden-unit blocks: [0, ..., H]

    @classmethod
    def of(cls, net: GRUNet) -> KernelWeights:
        cfg = net.config

        def f64(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())

        gru = net.gru
        ih = [getattr(gru, f"weight_ih_l{k}") for k in range(cfg.n_layers)]
        hh = [getattr(gru, f"weight_hh_l{k}") for k in range(cfg.n_layers)]
        ih_t = np.stack([f64(w).T for w in ih])  # a new C-contiguous array
        hh_t = np.stack([f64(w).T for w in hh])
        return cls(
            proj_t=f64(net.proj.weight).T.copy(),
            proj_b=f64(net.proj.bias),
            ih_t=ih_t,
            ih_b=np.stack([f64(getattr(gru, f"bias_ih_l{k}")) for k in range(cfg.n_layers)]),
            hh_t=hh_t,
            hh_b=np.stack([f64(getattr(gru, f"bias_hh_l{k}")) for k in range(cfg.n_layers)]),
            head_t=f64(net.head.weight).T.copy(),
            head_b=f64(net.head.bias),
            blocks=independent_blocks(np.concatenate([ih_t, hh_t], axis=0), cfg.n_hidden),
        )


def independent_blocks(weights_t: np.ndarray, n_hidden: int) -> np.ndarray:
    """Boundaries of the contiguous hidden-unit ranges that no recurrent or input weight connects.

    ``weights_t`` stacks (H, 3H) matrices (input unit, gate row). A boundary p splits the units when no non-zero
    weight links a unit below p with one at or above it, in either direction. A dense network is one block.
    """
    linked = np.zeros((n_hidden, n_hidden), dtype=bool)  # (input unit, hidden unit)
    for w in weights_t:
        nz = w != 0
        for g in range(3):
            linked |= nz[:, g * n_hidden : (g + 1) * n_hidden]
    rows, cols = np.nonzero(linked | linked.T)
    reach_hi = np.arange(n_hidden)
    reach_lo = np.arange(n_hidden)
    np.maximum.at(reach_hi, rows, cols)
    np.minimum.at(reach_lo, rows, cols)
    left_max = np.maximum.accumulate(reach_hi)  # highest unit linked to any unit below p
    right_min = np.minimum.accumulate(reach_lo[::-1])[::-1]  # lowest unit linked to any unit at or above p
    cuts = [p for p in range(1, n_hidden) if left_max[p - 1] < p and right_min[p] >= p]
    return np.asarray([0, *cuts, n_hidden], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + np.exp(-v))


@numba.njit(cache=True, nogil=True)
def _run(x, starts, h, w_proj_t, b_proj, ih_t, ih_b, hh_t, hh_b, w_head_t, b_head, blocks, out):  # pragma: no cover
    """Step request ``i`` through rows ``x[starts[i]:starts[i + 1]]`` from ``h[i]``, in place; outputs into ``out``."""
    n_layers, n_hidden = h.shape[1], h.shape[2]
    n_in, n_out = x.shape[1], out.shape[1]
    z = np.empty(n_hidden)
    gi = np.empty(3 * n_hidden)
    gh = np.empty(3 * n_hidden)
    for i in range(len(starts) - 1):
        for t in range(starts[i], starts[i + 1]):
            for j in range(n_hidden):  # input projection, tanh
                z[j] = b_proj[j]
            for c in range(n_in):
                xc = x[t, c]
                for j in range(n_hidden):
                    z[j] += xc * w_proj_t[c, j]
            for j in range(n_hidden):
                z[j] = np.tanh(z[j])
            for layer in range(n_layers):
                hl = h[i, layer]
                for b in range(len(blocks) - 1):
                    lo, hi = blocks[b], blocks[b + 1]
                    for g in range(3):
                        base = g * n_hidden
                        for j in range(lo, hi):
                            gi[base + j] = ih_b[layer, base + j]
                            gh[base + j] = hh_b[layer, base + j]
                        for k in range(lo, hi):
                            zk, hk = z[k], hl[k]
                            for j in range(lo, hi):
                                gi[base + j] += zk * ih_t[layer, k, base + j]
                                gh[base + j] += hk * hh_t[layer, k, base + j]
                    for j in range(lo, hi):  # torch's GRU: r, z (here u), n gates, then the blend
                        r = _sigmoid(gi[j] + gh[j])
                        u = _sigmoid(gi[n_hidden + j] + gh[n_hidden + j])
                        n = np.tanh(gi[2 * n_hidden + j] + r * gh[2 * n_hidden + j])
                        hl[j] = (1.0 - u) * n + u * hl[j]
                for j in range(n_hidden):  # the next layer reads this one's state
                    z[j] = hl[j]
            for o in range(n_out):
                out[t, o] = b_head[o]
            hl = h[i, n_layers - 1]
            for k in range(n_hidden):
                hk = hl[k]
                for o in range(n_out):
                    out[t, o] += hk * w_head_t[k, o]


def step_rows(w: KernelWeights, xs: list[np.ndarray], hs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Advance each device ``i`` by the rows of ``xs[i]`` from ``hs[i]`` (B, L, H); returns outputs and new states."""
    lengths = np.fromiter((len(x) for x in xs), dtype=np.int64, count=len(xs))
    starts = np.zeros(len(xs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    n_in = w.proj_t.shape[0]
    x = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1, n_in) for v in xs]) if xs else np.zeros((0, n_in))
    h = np.array(hs, dtype=np.float64, order="C")  # a copy: the caller's states stay as they were
    out = np.empty((len(x), w.head_b.shape[0]))
    _run(
        np.ascontiguousarray(x), starts, h, w.proj_t, w.proj_b, w.ih_t, w.ih_b, w.hh_t, w.hh_b,
        w.head_t, w.head_b, w.blocks, out,
    )  # fmt: skip
    return [out[starts[i] : starts[i + 1]] for i in range(len(xs))], h
