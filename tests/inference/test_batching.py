"""Micro-batcher: gathered/scattered states equal one-by-one runs; async batches run off the event loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import Checkpoint
from models.gru import GRUConfig, build
from streamer.inference.batching import MicroBatcher
from streamer.inference.predictor import Predictor, StepRequest

pytestmark = pytest.mark.unit


@pytest.fixture
def predictor_factory():
    def make(seed: int = 0) -> Predictor:
        torch.manual_seed(seed)
        net = build(GRUConfig(n_inputs=3, n_outputs=2, n_hidden=8, n_layers=2)).eval()
        return Predictor(Checkpoint("toy", net, {"version": "t-1"}))

    return make


def _requests(n: int, seed: int) -> list[StepRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.normal(size=(int(rng.integers(0, 9)), 3)).astype(np.float32)
        h = None if i % 3 == 0 else rng.normal(size=(2, 8)).astype(np.float32)
        out.append(StepRequest(f"dev{i}", x, h))
    return out


def test_batch_equals_each_request_alone(predictor_factory) -> None:
    predictor = predictor_factory()
    requests = _requests(23, seed=1)
    batched = MicroBatcher(predictor, max_batch_size=8).infer_batch(requests)
    assert [r.key for r in batched] == [r.key for r in requests]
    for req, res in zip(requests, batched, strict=True):
        alone = predictor.step_batch([req])[0]
        assert res.out.shape == (len(req.x), 2)
        np.testing.assert_allclose(res.out, alone.out, atol=1e-12)
        np.testing.assert_allclose(res.h, alone.h, atol=1e-12)
        assert (res.model, res.version) == ("toy", "t-1")
        if len(req.x) == 0:  # nothing to run: the state comes back as it went in
            np.testing.assert_allclose(res.h, req.h if req.h is not None else np.zeros((2, 8)))


def test_stepping_through_the_batcher_equals_one_call(predictor_factory) -> None:
    predictor = predictor_factory(seed=3)
    batcher = MicroBatcher(predictor, max_batch_size=4)
    x = np.random.default_rng(2).normal(size=(12, 3)).astype(np.float32)
    whole = batcher.infer_batch([StepRequest("d", x)])[0]
    h, outs = None, []
    for t in range(12):
        res = batcher.infer_batch([StepRequest("d", x[t : t + 1], h)])[0]
        h = res.h
        outs.append(res.out)
    np.testing.assert_allclose(np.concatenate(outs), whole.out, atol=1e-12)
    np.testing.assert_allclose(h, whole.h, atol=1e-12)


@pytest.mark.parametrize("name", ["af", "anomaly", "sepsis"])
def test_shipped_model_outputs_do_not_depend_on_the_batch_around_them(name: str) -> None:
    """A live worker batches a device with whichever devices came along, a few steps per call; offline runs it
    alone, and a replay after a crash in other batches again. Re-sent scores must be the same bytes (issue 10):
    torch's batched GEMMs moved them in the last bits with the batch shape, so the CPU path steps each device
    alone in a fixed order."""
    from models.checkpoint import load

    predictor = Predictor(load(name))
    n_inputs = predictor.config.n_inputs
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, n_inputs))
    others = [StepRequest(f"o{i}", rng.normal(size=(int(rng.integers(1, 6)), n_inputs))) for i in range(7)]
    whole = predictor.step_batch([StepRequest("d", x)])[0]
    h, outs, t = None, [], 0
    while t < len(x):
        n = int(rng.integers(1, 4))
        around = others[: int(rng.integers(0, len(others) + 1))]
        res = predictor.step_batch([*around, StepRequest("d", x[t : t + n], h)])[-1]
        h, t = res.h, t + n
        outs.append(res.out)
    assert np.array_equal(np.concatenate(outs), whole.out)
    assert np.array_equal(h, whole.h)


@pytest.mark.parametrize("name", ["af", "anomaly", "sepsis"])
def test_cpu_kernel_computes_what_the_torch_network_computes(name: str) -> None:
    from models.checkpoint import load

    ckpt = load(name)
    predictor = Predictor(ckpt)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 25, predictor.config.n_inputs))
    h = rng.normal(size=(predictor.config.n_layers, 3, predictor.config.n_hidden)) * 0.5
    with torch.no_grad():
        out, h_next = ckpt.model.to(torch.float64)(torch.from_numpy(x), torch.from_numpy(h))
    got = predictor.step_batch([StepRequest(f"d{i}", x[i], h[:, i]) for i in range(3)])
    for i, res in enumerate(got):
        np.testing.assert_allclose(res.out, out[i].numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.h, h_next[:, i].numpy(), rtol=0, atol=1e-12)


def test_independent_blocks_of_a_merged_ensemble_and_of_a_dense_network() -> None:
    from models.gru import merge_ensemble
    from streamer.inference.kernel import KernelWeights

    torch.manual_seed(0)
    members = [build(GRUConfig(n_inputs=3, n_outputs=2, n_hidden=4)).eval() for _ in range(3)]
    assert KernelWeights.of(merge_ensemble(members)).blocks.tolist() == [0, 4, 8, 12]
    assert KernelWeights.of(members[0]).blocks.tolist() == [0, 4]
    dense = merge_ensemble(members)
    with torch.no_grad():
        dense.gru.weight_hh_l0[0, 11] = 0.1  # unit 0's reset gate now reads unit 11: one block
    assert KernelWeights.of(dense).blocks.tolist() == [0, 12]
