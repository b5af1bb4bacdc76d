"""CPU per message of the two Kafka stages' ``handle`` (the real IngestStage and PipelineStage), without a broker.

N devices of ``bench/fleetload.py`` (a 1-s BIDMC PPG chunk and a numerics message per device-second) as aiokafka
records through ingest, and its forwarded records through the pipeline stage (models on unless ``--no-models``);
process CPU time over ``--seconds`` after ``--warmup-s`` of device time, and the share of it in the garbage
collector (``gc.callbacks``). The default warm-up (64 s) is longer than the longest window (numerics, 60 s) and the
beat buffer (44 s), so the timed part is the steady state a running fleet is in: with the 12 s used until
2026-12-04 no numerics window closed and no beat was dropped in the timed part.
``--profile`` runs the executor work inline under cProfile; ``--gc settled`` first does what the worker does at its
start (``settle_garbage_collector``: startup objects frozen, higher thresholds), for the ratio against ``default``.

    python bench/stage_path.py [--devices 200] [--no-models] [--profile] [--gc default|settled]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import fleetload  # noqa: E402
from aiokafka.structs import ConsumerRecord  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.kafka.agents import IngestStage  # noqa: E402
from streamer.kafka.pipeline_stage import PipelineStage  # noqa: E402
from streamer.kafka.store import PartitionState  # noqa: E402
from streamer.kafka.worker import compile_kernels, settle_garbage_collector  # noqa: E402
from streamer.offline.analyze import default_inference  # noqa: E402

WARMUP_S, CUT = 64, 500


def _records(topic: str, first: int, ts: int, pairs: list[tuple[bytes | None, bytes]], headers=()) -> list:
    return [
        ConsumerRecord(topic, 0, first + i, ts, 0, k, v, None, 0, len(v), list(headers))
        for i, (k, v) in enumerate(pairs)
    ]


class _GcClock:
    """Wall time spent in collections (single-threaded here but for the executor's own collections)."""

    def __init__(self) -> None:
        self.total_s, self._start, self.on = 0.0, 0.0, False
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.total_s += time.perf_counter() - self._start


async def _run(
    devices: int,
    seconds: int,
    models: bool,
    inline: bool,
    prof: cProfile.Profile | None = None,
    settled: bool = False,
    cut: int = CUT,
    warmup_s: int = WARMUP_S,
) -> dict[str, float]:
    if inline:  # cProfile sees only this thread: run the executor work here

        async def direct(_executor, fn, *args):  # type: ignore[no-untyped-def]
            return fn(*args)

        asyncio.get_running_loop().run_in_executor = direct  # type: ignore[method-assign]
    s = Settings(topic_prefix="b.", app_id="b.app")
    total_s = warmup_s + seconds  # the timed seconds come after the warm-up
    templates = fleetload.load_templates(total_s + 5)
    t0 = int(time.time() * 1000) - (total_s + 5) * 1000
    ingest = IngestStage(s)
    pipeline = PipelineStage(s, default_inference(s) if models else None, "b.app-acks-by-device")
    si, sp = PartitionState(0), PartitionState(0)
    ingest.assigned({0: si})
    pipeline.assigned({0: sp})
    pipeline.parsed = ingest.parsed  # as the worker wires them
    compile_kernels()  # as the worker does: in a fresh checkout the first windows would compile them (~12 s)
    if settled:
        settle_garbage_collector()
    clock = _GcClock()
    offsets, cost, n = [0, 0], {"ingest": 0.0, "pipeline": 0.0}, 0
    for sec in range(total_s):
        ts = t0 + sec * 1000
        clock.on = sec >= warmup_s
        if prof is not None and sec == warmup_s:
            prof.enable()  # the timed seconds only: not the recordings' loading nor the warm-up
        pairs = [m for d in range(devices) for m in fleetload.device_messages(templates, d, sec, ts)]
        recs = _records(s.topics.telemetry, offsets[0], ts, pairs)
        offsets[0] += len(recs)
        a = time.process_time()
        forwarded = []
        for i in range(0, len(recs), cut):
            forwarded += (await ingest.handle(si, recs[i : i + cut])).outgoing
        b = time.process_time()
        valid = [o for o in forwarded if o.topic == s.topics.telemetry_valid]
        vrecs = [_records(o.topic, offsets[1] + i, ts, [(o.key, o.value)], o.headers)[0] for i, o in enumerate(valid)]
        offsets[1] += len(vrecs)
        c = time.process_time()
        for i in range(0, len(vrecs), cut):
            await pipeline.handle(sp, vrecs[i : i + cut])
        await pipeline.checkpoint(sp, everything=False)
        d = time.process_time()
        if sec >= warmup_s:
            cost["ingest"] += b - a
            cost["pipeline"] += d - c
            n += len(recs)
    cost["of_which_gc"] = clock.total_s
    return {k: round(v / n * 1e6, 1) for k, v in cost.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30, help="timed seconds of device time, after the warm-up")
    parser.add_argument("--warmup-s", type=int, default=WARMUP_S, help="seconds of device time before the timing")
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--gc", choices=("default", "settled"), default="settled", help="collector as the worker sets it"
    )
    parser.add_argument("--cut", type=int, default=CUT, help="records per handle call (a live batch per partition)")
    parser.add_argument("--sort", default="tottime", help="pstats order for --profile (tottime, cumulative)")
    args = parser.parse_args()
    prof = cProfile.Profile() if args.profile else None
    us = asyncio.run(
        _run(
            args.devices,
            args.seconds,
            not args.no_models,
            args.profile,
            prof,
            args.gc == "settled",
            args.cut,
            args.warmup_s,
        )
    )
    if prof is not None:
        prof.disable()
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)
    print({"us_per_msg": us, "gc": args.gc, "devices": args.devices, "cut": args.cut, "warmup_s": args.warmup_s,
           "seconds": args.seconds, "load_avg": os.getloadavg()})  # fmt: skip


if __name__ == "__main__":
    main()
