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
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.config import Settings, recordings_dir  # noqa: E402
from streamer.sessions.format import SessionRecord  # noqa: E402

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


# -- processes ---------------------------------------------------------------------------------------------------
def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name, value in settings.model_dump().items():
        if value is not None and not isinstance(value, dict):
            env[f"VITALS_{name.upper()}"] = str(
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
    return env


class Worker:
    """``vitalstream worker`` as a child process (logging to a file)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self.started = time.monotonic()
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamer.cli.main", "worker"],
                cwd=REPO,
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self, stage: str = "pipeline") -> bool:
        return f"{stage}: partitions" in self.text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        return int(self.proc.returncode)


# -- the broker as the suite sees it -----------------------------------------------------------------------------
@dataclass
class Progress:
    settings: Settings

    def end_offsets(self, topics: list[str], partitions: list[int] | None = None) -> int:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**self.settings.kafka_client_kwargs())
        try:
            wanted = range(self.settings.partitions) if partitions is None else partitions
            return sum(consumer.end_offsets([TopicPartition(t, p) for t in topics for p in wanted]).values())
        finally:
            consumer.close()

    def outputs(self, partitions: list[int] | None = None) -> int:
        """Records the stages have published (on ``partitions``: outputs go to their input's partition)."""
        t = self.settings.topics
        return self.end_offsets([t.features, t.scores, t.alerts, t.telemetry_valid], partitions)

    def lag(self) -> int:
        """Input not yet reflected by the ingest and pipeline markers (the committed offsets follow them)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**self.settings.kafka_client_kwargs())
        try:
            total = 0
            for stage, topic in (
                ("ingest", self.settings.topics.telemetry),
                ("pipeline", self.settings.topics.telemetry_valid),
            ):
                committed = admin.list_consumer_group_offsets(f"{self.settings.app_id}-{stage}")
                done = sum(m.offset for tp, m in committed.items() if tp.topic == topic and m.offset >= 0)
                total += self.end_offsets([topic]) - done
            return total
        finally:
            admin.close()


def owned(worker: Worker, stage: str) -> list[int]:
    """The partitions of ``stage`` that the worker's log says it holds now."""
    lines = [ln for ln in worker.text().splitlines() if f"{stage}: partitions [" in ln]
    if not lines:
        return []
    inside = lines[-1].split(f"{stage}: partitions [", 1)[1].split("]", 1)[0]
    return [int(p) for p in inside.split(",") if p.strip()]


def wait_for(pred: Any, timeout_s: float, every_s: float = 0.25) -> float | None:
    """Seconds until ``pred()`` held, or None after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if pred():
                return time.monotonic() - start
        except Exception:  # the broker may be restarting: ask again
            pass
        time.sleep(every_s)
    return None


# -- the run -----------------------------------------------------------------------------------------------------
@dataclass
class Chaos:
    settings: Settings
    log_dir: Path
    rng: random.Random
    broker: Any = None  # a devbroker.LocalKafka when the suite owns the broker
    workers: list[Worker] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def start_worker(self) -> Worker:
        w = Worker(self.settings, self.log_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def pause(self, lo_s: float, hi_s: float) -> None:
        end = time.monotonic() + self.rng.uniform(lo_s, hi_s)
        while time.monotonic() < end:
            self._restart_dead()
            time.sleep(0.5)

    def _restart_dead(self) -> None:
        for i, w in enumerate(self.workers):
            if not w.alive() and w.proc.returncode not in (-9, 0):
                self.events.append(
                    {"fault": "worker exited by itself", "rc": w.proc.returncode, "log": w.log_path.name}
                )
                self.workers[i] = Worker(self.settings, self.log_dir / f"worker-r{len(self.events)}.log")

    def kill_worker(self) -> None:
        """kill -9 of the only worker, and a new one started at once (as a supervisor would)."""
        progress = Progress(self.settings)
        before = progress.outputs()
        self.workers[0].kill9()
        killed = time.monotonic()
        self.workers[0] = Worker(self.settings, self.log_dir / f"worker-k{len(self.events)}.log")
        first = wait_for(lambda: progress.outputs() > before, 180)
        self.events.append(
            {
                "fault": "worker kill -9, new process started",
                "first_new_output_s": None if first is None else round(time.monotonic() - killed, 1),
                "pending_before_kill": progress.lag(),
            }
        )

    def restart_broker(self, hard: bool) -> None:
        from streamer.kafka.devbroker import _pid, down, up

        started = time.monotonic()
        if hard:
            pid = _pid(self.broker)
            if pid:
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: _pid(self.broker) is None, 30)
        else:
            down(self.broker)
        time.sleep(self.rng.uniform(1, 4))
        up(self.broker)
        self.events.append(
            {
                "fault": "broker kill -9" if hard else "broker graceful restart",
                "down_s": round(time.monotonic() - started, 1),
            }
        )

    def rebalance_cycle(self, hard_stop: bool) -> None:
        second = self.start_worker()
        joined = wait_for(second.ready, 120)
        self.pause(2, 6)
        progress = Progress(self.settings)
        theirs = owned(second, "pipeline") or owned(second, "ingest")
        before = progress.outputs(theirs)
        stopped = time.monotonic()
        if hard_stop:
            second.kill9()
        else:
            second.stop()
        # The takeover: new output on the partitions the second worker held, from the first worker.
        first = wait_for(lambda: progress.outputs(theirs) > before, 120) if theirs else None
        self.workers.remove(second)
        self.events.append(
            {
                "fault": "rebalance 1->2->1"
                + (" (second worker kill -9)" if hard_stop else " (second worker SIGTERM)"),
                "second_joined_s": None if joined is None else round(joined, 1),
                "partitions_taken_over": theirs,
                "first_new_output_on_them_s": None if first is None else round(time.monotonic() - stopped, 1),
            }
        )

    def drain(self, timeout_s: float) -> bool:
        progress = Progress(self.settings)

        def idle() -> bool:
            self._restart_dead()
            return progress.lag() == 0

        done = wait_for(idle, timeout_s, every_s=2.0) is not None
        time.sleep(5)  # the tick's wall-clock closures of the last windows
        return done


# -- what came out -----------------------------------------------------------------------------------------------
def collect(settings: Settings) -> dict[str, list[Any]]:
    """Every record of the output topics, from the beginning to their current end."""
    from kafka import KafkaConsumer, TopicPartition

    t = settings.topics
    names = {t.telemetry_valid: "valid", t.dlq: "dlq", t.features: "features", t.scores: "scores", t.alerts: "alerts"}
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **settings.kafka_client_kwargs())
    tps = [TopicPartition(n, p) for n in names for p in range(settings.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    got: dict[str, list[Any]] = {v: [] for v in names.values()}
    while any(consumer.position(tp) < end[tp] for tp in tps):
        for tp, records in consumer.poll(timeout_ms=1000).items():
            got[names[tp.topic]] += records
    consumer.close()
    return got


def account(inputs: list[tuple[bytes, bytes]], got: dict[str, list[Any]], settings: Settings) -> dict[str, Any]:
    """Every input forwarded (once per distinct device/seq), counted as a duplicate, or dead-lettered."""
    from streamer.ingest.validation import Accepted, validate

    want_valid: dict[tuple[str, int], bytes] = {}
    want_dlq: set[bytes] = set()
    copies = 0
    for _key, value in inputs:
        checked = validate(
            value,
            now_ms=int(time.time() * 1000),
            max_message_bytes=settings.max_message_bytes,
            future_margin_ms=settings.future_margin_ms,
        )
        if isinstance(checked, Accepted):
            ident = (checked.message.device_id, checked.message.seq)
            copies += ident in want_valid
            want_valid.setdefault(ident, value)
        else:
            want_dlq.add(value)
    forwarded: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    times: Counter[tuple[str, int]] = Counter()
    for r in got["valid"]:
        msg = json.loads(r.value)
        forwarded[(msg["device_id"], msg["seq"])].add(r.value)
        times[(msg["device_id"], msg["seq"])] += 1
    import base64

    lettered = {base64.b64decode(json.loads(r.value)["original_b64"]) for r in got["dlq"]}
    lost = [k for k in want_valid if k not in forwarded] + [
        v[:40].decode(errors="replace") for v in want_dlq - lettered
    ]
    return {
        "inputs": len(inputs),
        "valid_distinct": len(want_valid),
        "duplicates_injected": copies,
        "malformed": len(want_dlq),
        "lost": len(lost),
        "lost_examples": [str(x) for x in lost[:5]],
        "forwarded_again": sum(n - 1 for n in times.values() if n > 1),
        "forwarded_again_differing": sum(1 for v in forwarded.values() if len(v) > 1),
        "dead_lettered_distinct": len(lettered & want_dlq),
        "accounted": len(inputs) == len(forwarded) + copies + len(lettered & want_dlq) and not lost,
    }


def _by_key(records: list[Any], key: Any, strip: Any = None) -> tuple[dict[Any, Any], int]:
    """Latest parsed value per key, and how many keys were published with differing bytes."""
    seen: dict[Any, set[bytes]] = defaultdict(set)
    parsed: dict[Any, Any] = {}
    for r in records:
        obj = json.loads(r.value)
        k = key(obj)
        if strip:
            strip(obj)
        seen[k].add(json.dumps(obj, sort_keys=True).encode() if strip else r.value)
        parsed[k] = obj
    return parsed, sum(1 for v in seen.values() if len(v) > 1)


def compare(inputs: list[tuple[bytes, bytes]], got: dict[str, list[Any]], settings: Settings) -> dict[str, Any]:
    """Live outputs against one uninterrupted offline run of the same inputs."""
    import math

    from streamer.offline.analyze import analyze_records, default_inference

    records = [SessionRecord(settings.topics.telemetry, k, v, 0) for k, v in inputs]
    offline = analyze_records(records, settings, inference=default_inference(settings), flush=False).output
    last_ms: dict[str, int] = {}
    for _key, value in inputs:
        try:
            msg = json.loads(value)
            last_ms[msg["device_id"]] = max(last_ms.get(msg["device_id"], 0), int(msg["ts_ms"]))
        except (ValueError, KeyError, TypeError):
            pass

    def fkey(f: dict) -> tuple:
        return (f["device_id"], f["signal"], f["window_start_ms"], f["window_end_ms"])

    def skey(s: dict) -> tuple:
        return (s["device_id"], s["model"]["name"], s.get("source"), s["ts_ms"])

    def akey(a: dict) -> tuple:
        return (a["alert_id"], a["state"], a["transition_ts_ms"])

    def no_stamp(a: dict) -> None:
        a["latency"]["publish_ts_ms"] = None

    live_f, f_diff = _by_key(got["features"], fkey)
    live_s, s_diff = _by_key(got["scores"], skey)
    live_a, a_diff = _by_key(got["alerts"], akey, no_stamp)
    want_f = {fkey(f.model_dump(mode="json")): f.model_dump(mode="json") for f in offline.features}
    want_s = {skey(s.model_dump(mode="json")): s.model_dump(mode="json") for s in offline.scores}
    want_a = {akey(a.model_dump(mode="json")): a.model_dump(mode="json") for a in offline.alerts}

    def after_end(device: str, ts: int) -> bool:  # closed by the wall clock after the device's data ended
        return ts > last_ms.get(device, 0)

    f_err = 0.0
    for k, f in want_f.items():
        if k in live_f:
            for name, v in f["features"].items():
                w = live_f[k]["features"].get(name)
                if v is None or w is None or (isinstance(v, float) and math.isnan(v)):
                    f_err = f_err if (v is None) == (w is None) else math.inf
                else:
                    f_err = max(f_err, abs(v - w))
    s_err = max((abs(want_s[k]["score"] - live_s[k]["score"]) for k in want_s if k in live_s), default=0.0)
    collapsed_live = {k for k in live_a if not after_end(live_a[k]["device_id"], k[2])}
    collapsed_want = {k for k in want_a if not after_end(want_a[k]["device_id"], k[2])}
    return {
        "features": {
            "offline": len(want_f),
            "live": len(live_f),
            "missing": len(want_f.keys() - live_f.keys()),
            "extra_before_data_end": sum(1 for k in live_f.keys() - want_f.keys() if not after_end(k[0], k[3])),
            "max_abs_diff": f_err,
            "resent_differing": f_diff,
        },
        "scores": {
            "offline": len(want_s),
            "live": len(live_s),
            "missing": len(want_s.keys() - live_s.keys()),
            "extra_before_data_end": sum(1 for k in live_s.keys() - want_s.keys() if not after_end(k[0], k[3])),
            "max_abs_diff": s_err,
            "resent_differing": s_diff,
        },
        "alerts": {
            "offline_transitions": len(collapsed_want),
            "live_transitions": len(collapsed_live),
            "identical": collapsed_live == collapsed_want,
            "missing": sorted(map(str, collapsed_want - collapsed_live))[:5],
            "extra": sorted(map(str, collapsed_live - collapsed_want))[:5],
            "resent_differing": a_diff,
        },
    }


def verdict(result: dict[str, Any]) -> bool:
    a, c = result["accounting"], result["comparison"]
    f, s, al = c["features"], c["scores"], c["alerts"]
    return bool(
        a["accounted"]
        and a["lost"] == 0
        and a["forwarded_again_differing"] == 0
        and f["missing"] == 0
        and f["extra_before_data_end"] == 0
        and f["max_abs_diff"] <= 1e-9
        and s["missing"] == 0
        and s["extra_before_data_end"] == 0
        and s["max_abs_diff"] <= 1e-6
        and al["identical"]
        and f["resent_differing"] == 0
        and s["resent_differing"] == 0
        and al["resent_differing"] == 0
    )


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


def short_inputs(copies: int = 2, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """Two golden sessions (cuts of MIT-BIH 201 and BIDMC 01) fanned out, with duplicates and malformed ones."""
    from streamer.offline.golden import GOLDENS, session_path
    from streamer.sessions.format import read_session

    messages = []
    for g in GOLDENS:
        if g.name in ("mitdb201_af", "bidmc01_icu"):
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
