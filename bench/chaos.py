"""Chaos suite: real recordings through real worker processes under kill -9, broker restarts and rebalances.

Replays MIT-BIH 203 and BIDMC 01 (``../shared/data``; PhysioNet, ODC-By / ODC-By, cite as their READMEs ask)
fanned out to several devices, with injected duplicates and malformed messages, into a broker that this script
starts on its own port. Then, while the workers drain the backlog: worker kill -9 at random moments, broker
restarts (graceful and kill -9, same data dir), rebalance cycles 1->2->1 with two worker processes. Afterwards
it accounts for every input (forwarded, counted duplicate or dead-lettered), checks that re-sent outputs are
byte-identical, and compares features, scores and collapsed alerts with an uninterrupted offline run.

    python bench/chaos.py                 # the full suite (about 20-30 min here), writes bench/results/chaos.json
    python bench/chaos.py --short         # one kill, one rebalance (what tests/kafka/test_chaos.py runs)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.chaos_check import account, collect, compare, recovery, verdict  # noqa: E402
from bench.chaos_faults import Chaos, wait_for  # noqa: E402
from streamer.config import Settings, recordings_dir  # noqa: E402

# Wall-clock judgements would depend on how slow this machine is and how long the broker is away, not on the data:
# silence, and closing a quiet device's windows once the grace has passed without input (a broker restart holds
# the input for up to a minute). Live and offline run with the same settings.
QUIET = {"silence_timeout_s": 3600.0, "late_grace_ms": 120_000}


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
FULL_PLAN = [  # 5 + 2 worker kill -9, 3 broker restarts (2 graceful, 1 kill -9), 3 rebalance cycles
    "kill",
    "rebalance",
    "broker",
    "kill",
    "rebalance-kill9",
    "broker-kill9",
    "kill",
    "rebalance-kill9",
    "broker",
    "kill",
    "kill",
]
SHORT_PLAN = ["kill", "rebalance"]


class Feeder(threading.Thread):
    """The gateway: sends ``inputs`` in order at a steady rate over ``feed_s`` (so every fault meets live traffic),
    holds while the broker is restarted (nothing is sent into an outage and lost), and checks every send."""

    def __init__(self, settings: Settings, inputs: list[tuple[bytes, bytes]], feed_s: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.inputs = settings, inputs
        self.interval_s = feed_s / max(1, len(inputs))
        self.sent = 0
        self.failed: list[str] = []
        self._hold = threading.Event()
        self._held = threading.Event()

    def run(self) -> None:
        from streamer.kafka.clients import producer

        prod = producer(self.settings)
        futures = []
        next_s = time.monotonic()
        for key, value in self.inputs:
            if self._hold.is_set():
                prod.flush()
                self._held.set()
                while self._hold.is_set():
                    time.sleep(0.05)
                next_s = time.monotonic()
            time.sleep(max(0.0, next_s - time.monotonic()))
            next_s += self.interval_s
            futures.append(prod.send(self.settings.topics.telemetry, key=key, value=value))
            self.sent += 1
        prod.flush()
        self.failed = [repr(f.exception) for f in futures if f.failed()]
        prod.close()
        self._held.set()

    def hold(self) -> None:
        """Stop sending and wait until what was sent is on the broker."""
        self._held.clear()
        self._hold.set()
        if self.is_alive():
            self._held.wait(120)

    def go_on(self) -> None:
        self._hold.clear()


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
    gap_s: tuple[float, float] = (1.0, 4.0),
    feed_s: float = 360.0,
) -> dict[str, Any]:
    """Produce ``inputs``, run the faults of ``plan`` while the workers drain them, then account and compare."""
    from streamer.kafka.topics import ensure_topics

    log_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    feeder = Feeder(settings, inputs, feed_s)
    chaos = Chaos(settings, log_dir, random.Random(seed), broker, feeder=feeder)
    loadavg_start = os.getloadavg()
    first = chaos.start_worker()
    if wait_for(first.ready, 180) is None:
        raise RuntimeError(f"worker not ready:\n{first.text()[-3000:]}")
    feeder.start()
    try:
        for name in plan:
            chaos.pause(*gap_s)
            step(chaos, name)
        fed_before_plan_ended = not feeder.is_alive()
        feeder.join(feed_s * 4)
        drained = chaos.drain(1200)
    finally:
        for w in chaos.workers:
            w.stop()
    got = collect(settings)
    result = {
        "plan": plan,
        "gap_s": list(gap_s),
        "seed": seed,
        "feed": {
            "s": feed_s,
            "sent": feeder.sent,
            "failed_sends": feeder.failed,
            "ended_before_plan": fed_before_plan_ended,
        },
        "wall_s": round(time.monotonic() - chaos.t0, 1),
        "drained": drained,
        "events": chaos.events,
        "assignments": chaos.assignments(),
        "accounting": account(inputs, got, settings),
        "comparison": compare(inputs, got, settings),
        "loadavg_1_5_15": {
            "start": [round(x, 2) for x in loadavg_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "cpus": os.cpu_count(),
    }
    result["recovery"] = recovery(result["events"])
    result["ok"] = drained and not feeder.failed and feeder.sent == len(inputs) and verdict(result)
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
    parser.add_argument("--devices", type=int, default=4, help="devices per recording (fan-out)")
    parser.add_argument("--minutes", type=float, default=30.0, help="device minutes of each recording (at most)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--plan", nargs="+", help=f"faults in order instead of the full plan (of {sorted(set(FULL_PLAN))})"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    from streamer.kafka.devbroker import LocalKafka, down, up

    broker = LocalKafka(name=f"chaos-{args.port}", port=args.port, controller_port=args.port + 1)
    # A fresh broker for every run: with the topics of earlier runs kept, each restart recovered hundreds of
    # partitions that this run never uses.
    down(broker)
    shutil.rmtree(broker.data, ignore_errors=True)
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
        plan = args.plan or FULL_PLAN
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
        "duplicates_injected": 30 if args.short else 100,
        "malformed_injected": 12 if args.short else 30,
        "silence_timeout_s": settings.silence_timeout_s,
        "late_grace_ms": settings.late_grace_ms,
        "command": " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("ok", "wall_s", "accounting", "recovery")}, indent=2, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
