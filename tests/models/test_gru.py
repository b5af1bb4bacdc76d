"""GRU hidden-state API: stepping equals the whole sequence; padded batches equal sequences alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.gru import GRUConfig, GRUNet, build

pytestmark = pytest.mark.unit


def _net(n_layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return build(GRUConfig(n_inputs=3, n_outputs=4, n_hidden=16, n_layers=n_layers)).eval()


def test_step_by_step_equals_whole_sequence() -> None:
    net = _net()
    x = torch.randn(5, 40, 3, generator=torch.Generator().manual_seed(1))  # (B, T, C)
    with torch.no_grad():
        whole, h_whole = net(x)
        h, steps = None, []
        for t in range(x.shape[1]):
            out, h = net(x[:, t : t + 1], h)
            steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_whole, atol=1e-5, rtol=0)


def test_chunks_with_carried_state_equal_whole_sequence() -> None:
    net = _net(n_layers=1)
    x = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole, _ = net(x)
        a, h = net(x[:, :7])
        b, _ = net(x[:, 7:], h)
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, atol=1e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6), st.integers(0, 2**16))
def test_padded_batch_equals_each_sequence_alone(lengths: list[int], seed: int) -> None:
    net = _net(seed=seed % 7)
    rng = np.random.default_rng(seed)
    t_max = max(max(lengths), 1)
    x = torch.from_numpy(rng.normal(size=(len(lengths), t_max, 3)).astype(np.float32))
    h0 = torch.from_numpy(rng.normal(size=(2, len(lengths), 16)).astype(np.float32))
    with torch.no_grad():
        out, h = net(x, h0, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            if n == 0:  # no steps: state passes through untouched
                torch.testing.assert_close(h[:, i], h0[:, i])
                continue
            alone, h_alone = net(x[i : i + 1, :n], h0[:, i : i + 1].contiguous())
            torch.testing.assert_close(out[i, :n], alone[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(h[:, i], h_alone[:, 0], atol=1e-5, rtol=0)
            assert torch.all(out[i, n:] == 0)


def test_output_shapes() -> None:
    net = _net(n_layers=2)
    out, h = net(torch.zeros(3, 8, 3))
    assert out.shape == (3, 8, 4)
    assert h.shape == (2, 3, 16)


def test_merged_ensemble_is_the_mean_of_its_members_step_by_step() -> None:
    from models.gru import merge_ensemble

    torch.manual_seed(3)
    members = [GRUNet(GRUConfig(n_inputs=5, n_outputs=2, n_hidden=6)).eval() for _ in range(3)]
    merged = merge_ensemble(members)
    x = torch.randn(2, 9, 5)
    with torch.inference_mode():
        mean = torch.stack([m(x)[0] for m in members]).mean(dim=0)
        whole, _ = merged(x)
        h, steps = None, []
        for t in range(x.shape[1]):
            out, h = merged(x[:, t : t + 1], h)
            steps.append(out)
    torch.testing.assert_close(whole, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, rtol=1e-5, atol=1e-6)
    assert merged.config.n_hidden == 18
