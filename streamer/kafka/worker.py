"""The worker's stages as one service inside the Faust app: a producer, three partitioned runners and timers.

Stages run on their own aiokafka consumers (see ``docs/ARCHITECTURE.md``, "Delivery"): the Faust app hosts them
(worker lifecycle, signals, logging) but no stage depends on the offsets Faust would commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from streamer.config import Settings
from streamer.features import kernels
from streamer.kafka import metrics
from streamer.kafka.acks import AckRouter, AlertIndex
from streamer.kafka.agents import DLQ_LOG, IngestStage
from streamer.kafka.pipeline_stage import PipelineStage
from streamer.kafka.runner import ConsumerTimings, PartitionedRunner, Stage
from streamer.kafka.topics import acks_by_device_topic, changelog_topic
from streamer.signals import ppg_beats

log = logging.getLogger(__name__)
COUNTS_EVERY_S = 10.0
TICK_EVERY_S = 1.0
COMMIT_EVERY_S = 1.0  # consumer group offsets (lag monitoring only)
CHECKPOINT_EVERY_S = 1.0  # how often states that waited VITALS_CHECKPOINT_S are written (quiet devices too)
# Young-generation threshold (CPython's default is 700 allocations): see ``settle_garbage_collector``.
GC_THRESHOLDS = (5_000, 20, 100)


def settle_garbage_collector() -> None:
    """Take the startup objects out of the cyclic collector and let it run less often.

    Measured (``bench/stage_path.py``, 500 devices, models on, 18 s): with CPython's defaults the collector took
    52 us per message, including full collections of 325 ms each that traverse the ~340,000 objects of torch,
    numba and pydantic loaded at startup, on the thread that runs the batches. After ``gc.freeze()`` of those (they
    live as long as the process) and a young threshold of 5,000 it took 12 us per message with no full collection
    in the window. The stages' own data are acyclic (arrays, dicts of numbers): reference counting frees them, and
    the rarer collections still catch any cycle.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def compile_kernels() -> float:
    """Compile (or load from numba's cache) every numba kernel of the stages before any partition is taken.

    Otherwise the first PPG and feature windows compile them on the batch thread while this worker holds its
    partitions: about 12 s in a fresh checkout here, logged at every start as "numba kernels ready in ... s" (numba
    caches the machine code beside the modules, so later processes only load it). The models' kernel is compiled
    when a ``Predictor`` is created. Returns seconds.
    """
    started_s = time.perf_counter()
    kernels.warm_up()
    ppg_beats.warm_up()
    return time.perf_counter() - started_s


def load_inference(settings: Settings) -> Any | None:
    try:
        from streamer.inference.stage import InferenceStage

        return InferenceStage(settings, weights_dir=settings.weights_dir)
    except Exception:  # the rules go on without models; the stage itself reports MODEL_UNAVAILABLE when it can
        log.exception("inference stage could not be created; running on rules alone")
        return None


class DeliveryWorker:
    """Everything one worker process runs; ``run`` until cancelled, then leave the groups cleanly."""

    def __init__(self, settings: Settings, client_kwargs: dict[str, object]) -> None:
        self.settings, self.client_kwargs = settings, client_kwargs
        self.index = AlertIndex(settings.topics.alerts, settings.partitions, client_kwargs)
        self.ingest = IngestStage(settings)
        self.pipeline = PipelineStage(settings, load_inference(settings), acks_by_device_topic(settings))
        self.pipeline.parsed = self.ingest.parsed  # the pipeline takes ingest's parsed messages, not the bytes again
        metrics.watch_pipeline(self.pipeline.device_count, self.pipeline.inference)
        self.router = AckRouter(settings, self.index, acks_by_device_topic(settings))
        self.producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,  # a retried send is not written twice
            linger_ms=settings.producer_linger_ms,
            max_batch_size=settings.producer_max_batch_bytes,
            max_request_size=16 * 1024 * 1024,
            **client_kwargs,
        )
        self.runners: list[PartitionedRunner] = []
        self._tasks: list[asyncio.Task[Any]] = []

    def _runner(self, stage: Stage) -> PartitionedRunner:
        return PartitionedRunner(
            stage,
            group_id=f"{self.settings.app_id}-{stage.name}",
            changelog=changelog_topic(self.settings, stage.name),
            producer=self.producer,
            client_kwargs=self.client_kwargs,
            timings=ConsumerTimings(max_poll_records=self.settings.stream_take_max),
        )

    async def run(self) -> None:
        compiled_s = await asyncio.get_running_loop().run_in_executor(None, compile_kernels)  # off the event loop
        log.info("numba kernels ready in %.1f s", compiled_s)
        settle_garbage_collector()  # models, clients, kernels and every import are loaded by now
        await self.producer.start()
        self.runners = [self._runner(s) for s in (self.ingest, self.pipeline, self.router)]
        ingest_runner, pipeline_runner = self.runners[0], self.runners[1]

        async def complete(partition: int) -> bool:
            """Nothing more to come on ``partition``: ingest has forwarded all of its telemetry (when this worker
            owns that ingest partition; otherwise we cannot tell) and the pipeline has processed all of that. A
            pipeline that surely is behind answers first, without the round trips (``PartitionedRunner.behind``)."""
            if pipeline_runner.behind(partition):
                return False
            if partition not in ingest_runner.states or not await ingest_runner.drained(partition):
                return False
            return await pipeline_runner.drained(partition)

        async def tick() -> None:
            effects = await self.pipeline.tick(pipeline_runner.states, complete)
            if effects:
                await pipeline_runner.commit(effects)

        jobs = [r.run() for r in self.runners]
        jobs += [pipeline_runner.every(TICK_EVERY_S, tick), self._report_counts()]
        jobs += [r.every(CHECKPOINT_EVERY_S, r.checkpoint_due) for r in (ingest_runner, pipeline_runner)]
        jobs += [r.every(COMMIT_EVERY_S, r.commit_offsets, locked=False) for r in self.runners]
        self._tasks = [asyncio.create_task(job) for job in jobs]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                if not task.done() and not task.cancelling():  # a second cancel would cut its ``finally`` short
                    task.cancel()
            # Let every runner write its pending states and stop its consumer (a LeaveGroup: its partitions move at
            # once, not after the session timeout) while the producer is still up.
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.index.stop()
            with contextlib.suppress(Exception):
                await self.producer.stop()

    async def _report_counts(self) -> None:
        while True:
            await asyncio.sleep(COUNTS_EVERY_S)
            DLQ_LOG.flush()
            for stage in (self.ingest, self.pipeline, self.router):
                if stage.counts:
                    log.info("%s counts: %s", stage.name, dict(sorted(stage.counts.items())))

    # -- readiness and lag (streamer/kafka/web.py) ---------------------------------------------------------
    def readiness(self) -> dict[str, bool]:
        """Every stage's consumer has partitions and has restored their state; every loop runs; models loaded."""
        assigned = bool(self.runners) and all(r.consumer.assignment() for r in self.runners)
        restored = assigned and all(
            {tp.partition for tp in r.consumer.assignment()} <= set(r.states) for r in self.runners
        )
        running = bool(self._tasks) and not any(t.done() for t in self._tasks)
        return {
            "assigned": assigned,
            "restored": restored,
            "consuming": running,
            "models_loaded": metrics.models_loaded(),
        }

    async def lag(self) -> dict[tuple[str, int], int]:
        """Highwater minus position for every partition that a stage's consumer holds."""
        lags: dict[tuple[str, int], int] = {}
        for runner in self.runners:
            for tp in runner.consumer.assignment():
                high = runner.consumer.highwater(tp)
                if high is not None:
                    lags[(tp.topic, tp.partition)] = max(0, high - await runner.consumer.position(tp))
        return lags
