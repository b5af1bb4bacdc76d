"""Chaos suite: real recordings through real worker processes under kill -9, broker restarts and rebalances.

Replays MIT-BIH 203 and BIDMC 01 (``../shared/data``; PhysioNet, ODC-By / ODC-By, cite as their READMEs ask)
fanned out to several devices, with injected duplicates and malformed messages, into a broker that this script
starts on its own port. Then, while the workers drain the backlog: worker kill -9 at random moments, broker
restarts (graceful and kill -9, same data dir), rebalance cycles 1->2->1 with two worker processes. Afterwards
it accounts for every input (forwarded, counted duplicate or dead-lettered), checks that re-sent outputs are
byte-identical, and compares features, scores and collapsed alerts with an uninterrupted offline run.

    python bench/chaos.py                 # the full suite (about 15-25 min here), writes bench/results/chaos.json
    python bench/chaos.py --short         # one kill, one rebalance (what tests/kafka/test_chaos.py runs)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.chaos_check import account, collect, compare, verdict  # noqa: E402
from bench.chaos_faults import Chaos, wait_for  # noqa: E402
from streamer.config import Settings, recordings_dir  # noqa: E402

QUIET = {"silence_timeout_s": 3600.0}  # wall-clock silence would depend on how slow this machine is, not the data


# -- inputs ------------------------------------------------------------------------------------------------------
def recording_inputs(minutes: float) -> list[tuple[str, bytes]]:
    """MIT-BIH 203 and BIDMC 01 as (device id, telemetry JSON), cut to ``minutes`` of device time each."""
    from streamer.sessions.importers import import_records

    data = recordings_dir()
    out: list[tuple[str, bytes]] = []
    for kind, path in (("wfdb", data / "mitdb" / "203"), ("bidmc", data / "bidmc" / "bidmc_01_Signals.csv")):
        first: int | None = None
        for device, value in import_records(kind, path):
            ts = json.loads(value)["ts_ms"]
            first = ts if first is None else first
            if ts - first < minutes * 60_000:
                out.append((device, value))
    return out


def fan_out(messages: list[tuple[str, bytes]], copies: int) -> list[tuple[bytes, bytes]]:
    """``copies`` devices per recording (device ids ``<id>.f<n>``), interleaved as one gateway would send them."""
    streams = []
    for n in range(copies):
        stream = []
        for device, value in messages:
            obj = json.loads(value)
            obj["device_id"] = f"{device}.f{n}"
            stream.append((obj["device_id"].encode(), json.dumps(obj, separators=(",", ":")).encode()))
        streams.append(stream)
    return [rec for group in zip(*streams, strict=True) for rec in group]


def inject(records: list[tuple[bytes, bytes]], rng: random.Random, duplicates: int, malformed: int) -> list:
    """Duplicates (a copy re-sent a little later) and malformed messages (each one distinct) at random places."""
    out = list(records)
    for _ in range(duplicates):
        i = rng.randrange(len(records))
        out.insert(min(len(out), i + rng.randrange(1, 50)), records[i])
    for n in range(malformed):
        key, value = records[rng.randrange(len(records))]
        bad = [value[: len(value) // 2], value.replace(b'"seq":', b'"seq":-', 1), b"not json %d" % n][n % 3]
        out.insert(rng.randrange(len(out)), (key, bad + b" " * (n // 3)))  # distinct bytes for each
    return out


# -- plans -------------------------------------------------------------------------------------------------------
FULL_PLAN = [
    "kill",
    "rebalance",
    "broker",
    "kill",
    "rebalance-kill9",
    "broker-kill9",
    "kill",
    "rebalance-kill9",
    "broker",
]
SHORT_PLAN = ["kill", "rebalance"]


def produce(settings: Settings, inputs: list[tuple[bytes, bytes]]) -> None:
    from streamer.kafka.clients import producer

    prod = producer(settings)
    for key, value in inputs:
        prod.send(settings.topics.telemetry, key=key, value=value)
    prod.flush()
    prod.close()


def step(chaos: Chaos, name: str) -> None:
    if name == "kill":
        chaos.kill_worker()
    elif name.startswith("rebalance"):
        chaos.rebalance_cycle(hard_stop=name.endswith("kill9"))
    elif name.startswith("broker"):
        chaos.restart_broker(hard=name.endswith("kill9"))
    else:
        raise ValueError(f"unknown fault {name!r}")


def suite(
    settings: Settings,
    inputs: list[tuple[bytes, bytes]],
    plan: list[str],
    log_dir: Path,
    *,
    seed: int = 7,
    broker: Any = None,
    gap_s: tuple[float, float] = (3.0, 10.0),
) -> dict[str, Any]:
    """Produce ``inputs``, run the faults of ``plan`` while the workers drain them, then account and compare."""
    from streamer.kafka.topics import ensure_topics

    log_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    produce(settings, inputs)
    chaos = Chaos(settings, log_dir, random.Random(seed), broker)
    started = time.monotonic()
    first = chaos.start_worker()
    if wait_for(first.ready, 180) is None:
        raise RuntimeError(f"worker not ready:\n{first.text()[-3000:]}")
    try:
        for name in plan:
            chaos.pause(*gap_s)
            step(chaos, name)
        drained = chaos.drain(1200)
    finally:
        for w in chaos.workers:
            w.stop()
    got = collect(settings)
    result = {
        "plan": plan,
        "wall_s": round(time.monotonic() - started, 1),
        "drained": drained,
        "events": chaos.events,
        "accounting": account(inputs, got, settings),
        "comparison": compare(inputs, got, settings),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    result["ok"] = drained and verdict(result)
    return result


def short_inputs(
    copies: int = 2, seed: int = 7, names: tuple[str, ...] = ("mitdb201_af", "bidmc01_icu")
) -> list[tuple[bytes, bytes]]:
    """Golden sessions (cuts of MIT-BIH 201 and BIDMC 01) fanned out, with duplicates and malformed ones."""
    from streamer.offline.golden import GOLDENS, session_path
    from streamer.sessions.format import read_session

    messages = []
    for g in GOLDENS:
        if g.name in names:
            messages += [(r.key.decode(), r.value) for r in read_session(session_path(g)) if r.key and r.value]
    return inject(fan_out(messages, copies), random.Random(seed), duplicates=30, malformed=12)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="one kill and one rebalance, golden sessions")
    parser.add_argument("--port", type=int, default=29292, help="the suite's own broker (controller on port+1)")
    parser.add_argument("--devices", type=int, default=2, help="devices per recording (fan-out)")
    parser.add_argument("--minutes", type=float, default=10.0, help="device minutes of each recording")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    from streamer.kafka.devbroker import LocalKafka, down, up

    broker = LocalKafka(name=f"chaos-{args.port}", port=args.port, controller_port=args.port + 1)
    bootstrap = up(broker)
    prefix = f"chaos{int(time.time())}."
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix, app_id=f"{prefix}app", data_dir=REPO / "var" / "chaos", **QUIET
    )  # type: ignore[arg-type]
    if args.short:
        inputs, plan = short_inputs(args.devices, args.seed), SHORT_PLAN
    else:
        rng = random.Random(args.seed)
        inputs = inject(fan_out(recording_inputs(args.minutes), args.devices), rng, duplicates=100, malformed=30)
        plan = FULL_PLAN
    try:
        result = suite(
            settings, inputs, plan, REPO / "var" / "chaos" / prefix.rstrip("."), seed=args.seed, broker=broker
        )
    finally:
        down(broker)
    result["settings"] = {
        "devices": args.devices * 2,
        "minutes": args.minutes,
        "partitions": settings.partitions,
        "seed": args.seed,
        "short": args.short,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("ok", "wall_s", "accounting")}, indent=2, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
