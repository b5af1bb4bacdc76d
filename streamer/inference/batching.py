"""Micro-batching: the steps of many devices for one model, run in chunks of at most ``max_batch_size``.

The pipeline agent runs a whole ``stream.take_events`` batch of stages 2-5 in one worker thread, so every model call
is already off the event loop and batched across the devices of that batch; ``max_batch_size`` bounds the padded
tensor (memory and latency), not the wait. (An asyncio path that parked single requests behind a max-wait timer
existed and was removed: with one agent owning every device of a worker it had no caller.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from streamer.inference.predictor import StepRequest, StepResult


class MicroBatcher:
    """Batches ``StepRequest``s for one predictor; callers keep one request per key in a call."""

    def __init__(self, predictor: Any, max_batch_size: int = 256) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        # Called after each model batch with (model name, batch size, max batch size, seconds): the worker's metrics.
        self.observer: Callable[[str, int, int, float], None] | None = None

    def infer_batch(self, requests: Sequence[StepRequest]) -> list[StepResult]:
        """Run all requests now, in chunks of at most ``max_batch_size``, results in request order."""
        results: list[StepResult] = []
        for s in range(0, len(requests), self.max_batch_size):
            chunk = requests[s : s + self.max_batch_size]
            started_s = time.perf_counter()
            results += self.predictor.step_batch(chunk)
            if self.observer is not None:
                self.observer(self.predictor.name, len(chunk), self.max_batch_size, time.perf_counter() - started_s)
        return results
