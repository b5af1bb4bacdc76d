"""Where the worker's CPU goes per message, without Kafka: validation, stages 2-5 and the state codec, per device-second.

N devices each send a 1-s BIDMC PPG chunk and a numerics message per second (``bench/fleetload.py``); after a
warm-up of ``--warmup-s`` device-seconds, ``--seconds`` more are timed stage by stage (median of ``--repeats``), and
``--profile`` prints cProfile's top functions of the whole loop. Results in bench/results/pipeline_profile.json.

    python bench/pipeline_profile.py [--devices 200] [--seconds 20] [--profile]
    python bench/pipeline_profile.py --no-models --per-chunk-filters --baseline /tmp/main --baseline-label d8f041a
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def _measure_elsewhere(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """The same measurement on another checkout's code (``--baseline``), in a fresh interpreter."""
    code = (f"import sys, json; sys.argv = ['x']; sys.path[:0] = [{str(tree)!r}, {str(tree / 'bench')!r}]; "
            f"import pipeline_profile as pp; print(json.dumps(pp.measure({args.devices}, {args.warmup_s}, "
            f"{args.seconds}, {not args.no_models})))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["total_us_per_msg"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--warmup-s", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--per-chunk-filters", action="store_true", help="also time this code without fleet filters")
    parser.add_argument("--baseline", type=Path, help="a checkout of earlier code to time in the same run")
    parser.add_argument("--baseline-label", default="", help="what --baseline holds (a commit), for the record")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline_profile.json")
    args = parser.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(measure, args.devices, args.warmup_s, args.seconds, not args.no_models)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return
    load_before = os.getloadavg()
    runs, per_chunk, baseline = [], [], []
    for _ in range(args.repeats):  # interleaved, so that the machine's load hits every variant alike
        runs.append(measure(args.devices, args.warmup_s, args.seconds, not args.no_models))
        if args.per_chunk_filters:
            per_chunk.append(measure(args.devices, args.warmup_s, args.seconds, not args.no_models, False))
        if args.baseline:
            baseline.append(_measure_elsewhere(args.baseline, args))
    out: dict[str, Any] = {"what": __doc__.split("\n\n")[0], "devices": args.devices, "seconds": args.seconds,
                           "models": not args.no_models, "median_run": _median(runs), "runs": runs}  # fmt: skip
    if per_chunk:
        out["per_chunk_filters"] = {"median_run": _median(per_chunk), "runs": per_chunk}
    if baseline:
        base = _median(baseline)
        out["baseline"] = {"code": args.baseline_label, "median_run": base, "runs": baseline}
        out["speedup_vs_baseline"] = {
            k: round(base["us_per_msg"][k] / max(out["median_run"]["us_per_msg"][k], 1e-9), 2)
            for k in ("stages", "encode_state")
        }
    out |= {"load_avg_before": load_before, "load_avg_after": os.getloadavg(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
