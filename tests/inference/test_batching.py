"""Micro-batcher: gathered/scattered states equal one-by-one runs; async batches run off the event loop."""

from __future__ import annotations

import asyncio
import threading

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
        np.testing.assert_allclose(res.out, alone.out, atol=1e-5)
        np.testing.assert_allclose(res.h, alone.h, atol=1e-5)
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
    np.testing.assert_allclose(np.concatenate(outs), whole.out, atol=1e-5)
    np.testing.assert_allclose(h, whole.h, atol=1e-5)


def test_async_infer_batches_by_size_off_the_event_loop(predictor_factory) -> None:
    predictor = predictor_factory()
    threads: list[str] = []
    original = predictor.step_batch

    def spy(requests):
        threads.append(threading.current_thread().name)
        return original(requests)

    predictor.step_batch = spy  # type: ignore[method-assign]
    batcher = MicroBatcher(predictor, max_batch_size=5, max_wait_ms=1000)
    requests = _requests(20, seed=4)

    async def main():
        return await batcher.infer_many(requests), threading.current_thread().name

    results, loop_thread = asyncio.run(main())
    batcher.close()
    expected = MicroBatcher(predictor_factory(), max_batch_size=64).infer_batch(requests)
    for got, want in zip(results, expected, strict=True):
        assert got.key == want.key
        np.testing.assert_allclose(got.out, want.out, atol=1e-5)
    assert len(threads) == 4  # 20 requests in batches of 5, none waiting for the 1 s timer
    assert all(t != loop_thread and t.startswith("infer-toy") for t in threads)


def test_async_infer_flushes_after_max_wait(predictor_factory) -> None:
    batcher = MicroBatcher(predictor_factory(), max_batch_size=100, max_wait_ms=30)
    request = _requests(2, seed=5)[1]

    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await asyncio.wait_for(batcher.infer(request), timeout=5)
        return result, loop.time() - start

    result, waited_s = asyncio.run(main())
    batcher.close()
    assert result.key == request.key
    assert 0.025 <= waited_s < 2.0
    assert batcher.batches_run == 1


def test_async_failure_reaches_every_waiter(predictor_factory) -> None:
    predictor = predictor_factory()

    def broken(requests):
        raise RuntimeError("boom")

    predictor.step_batch = broken  # type: ignore[method-assign]
    batcher = MicroBatcher(predictor, max_batch_size=3, max_wait_ms=5)

    async def main():
        return await asyncio.gather(*(batcher.infer(r) for r in _requests(3, 6)), return_exceptions=True)

    outcomes = asyncio.run(main())
    batcher.close()
    assert all(isinstance(o, RuntimeError) for o in outcomes)
