"""Micro-batching: requests from many devices collected up to a size or a wait, run off the event loop.

``MicroBatcher.infer`` is for asyncio callers (the Faust agents): it parks the request, and the batch
runs in one worker thread via ``loop.run_in_executor`` when ``max_batch_size`` requests are waiting
or ``max_wait_ms`` has passed since the first, so a model call never blocks the event loop.
``MicroBatcher.infer_batch`` is the synchronous path of the offline runner and the benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamer.inference.predictor import StepRequest, StepResult


class MicroBatcher:
    """Batches ``StepRequest``s for one predictor; callers keep one request per key in flight."""

    def __init__(self, predictor: Any, max_batch_size: int = 256, max_wait_ms: float = 20.0) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        # One worker thread: batches of one model run one after another, in arrival order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{predictor.name}")
        self._pending: list[tuple[StepRequest, asyncio.Future[StepResult]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batches_run = 0
        # Called after each model batch with (model name, batch size, max batch size, seconds): the worker's metrics.
        self.observer: Callable[[str, int, int, float], None] | None = None

    def infer_batch(self, requests: Sequence[StepRequest]) -> list[StepResult]:
        """Run all requests now, in chunks of at most ``max_batch_size``, results in request order."""
        results: list[StepResult] = []
        for s in range(0, len(requests), self.max_batch_size):
            chunk = requests[s : s + self.max_batch_size]
            started_s = time.perf_counter()
            results += self.predictor.step_batch(chunk)
            self.batches_run += 1
            if self.observer is not None:
                self.observer(self.predictor.name, len(chunk), self.max_batch_size, time.perf_counter() - started_s)
        return results

    async def infer(self, request: StepRequest) -> StepResult:
        """Await this request's result from the next micro-batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StepResult] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self.max_batch_size:
            self._flush(loop)
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_ms / 1000.0, self._flush, loop)
        return await future

    async def infer_many(self, requests: Sequence[StepRequest]) -> list[StepResult]:
        return list(await asyncio.gather(*(self.infer(r) for r in requests)))

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size :]
        if self._pending:  # more than one batch arrived at once: the rest goes next, without waiting
            self._timer = loop.call_later(0, self._flush, loop)
        if batch:
            loop.create_task(self._run(loop, batch))

    async def _run(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[StepRequest, asyncio.Future[StepResult]]]
    ) -> None:
        try:
            results = await loop.run_in_executor(self._executor, self.infer_batch, [r for r, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter must learn of the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
