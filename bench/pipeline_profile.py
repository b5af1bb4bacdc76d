"""Where the worker's CPU goes per message, without Kafka: validation, stages 2-5 and the state codec, per device-second.

N devices each send a 1-s BIDMC PPG chunk and a numerics message per second (``bench/fleetload.py``); after a
warm-up of ``--warmup-s`` device-seconds, ``--seconds`` more are timed stage by stage (median of ``--repeats``), and
``--profile`` prints cProfile's top functions of the whole loop. Results in bench/results/pipeline_profile.json.

    python bench/pipeline_profile.py [--devices 200] [--seconds 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import fleetload  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.ingest.validation import Accepted, validate  # noqa: E402
from streamer.offline.analyze import default_inference  # noqa: E402
from streamer.pipeline import Pipeline  # noqa: E402
from streamer.state import encode_state  # noqa: E402


def _second(templates, devices: int, second: int, t0_ms: int) -> list[bytes]:
    return [
        v for d in range(devices) for _, v in fleetload.device_messages(templates, d, second, t0_ms + second * 1000)
    ]


def measure(devices: int, warmup_s: int, seconds: int, models: bool, fleet_filters: bool = True) -> dict[str, float]:
    settings = Settings()
    templates = fleetload.load_templates(warmup_s + seconds + 5)
    t0_ms = int(time.time() * 1000) - (warmup_s + seconds + 5) * 1000
    pipeline = Pipeline(settings, default_inference(settings) if models else None, fleet_filters=fleet_filters)
    cost = {"validate": 0.0, "stages": 0.0, "encode_state": 0.0}
    state_bytes: list[int] = []
    for second in range(warmup_s + seconds):
        raw = _second(templates, devices, second, t0_ms)
        a = time.perf_counter()
        now = int(time.time() * 1000)
        msgs = [r.message for r in (validate(b, now_ms=now, max_message_bytes=1 << 20, future_margin_ms=60_000)
                                    for b in raw) if isinstance(r, Accepted)]  # fmt: skip
        b = time.perf_counter()
        pipeline.process([(m, now) for m in msgs])
        c = time.perf_counter()
        blobs = [encode_state(rt.to_state()) for rt in pipeline.devices.values()]
        d = time.perf_counter()
        if second >= warmup_s:
            cost["validate"] += b - a
            cost["stages"] += c - b
            cost["encode_state"] += d - c
            state_bytes += [len(x) for x in blobs]
    n = devices * 2 * seconds
    per = {k: v / n * 1e6 for k, v in cost.items()}
    return {"us_per_msg": {k: round(v, 1) for k, v in per.items()}, "total_us_per_msg": round(sum(per.values()), 1),
            "state_bytes_per_device": round(statistics.mean(state_bytes))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--warmup-s", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline_profile.json")
    args = parser.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(measure, args.devices, args.warmup_s, args.seconds, not args.no_models)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return
    runs = [measure(args.devices, args.warmup_s, args.seconds, not args.no_models) for _ in range(args.repeats)]
    best = sorted(runs, key=lambda r: r["total_us_per_msg"])[len(runs) // 2]
    out = {"what": __doc__.split("\n\n")[0], "devices": args.devices, "seconds": args.seconds, "median_run": best,
           "runs": runs, "load_avg": os.getloadavg(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
