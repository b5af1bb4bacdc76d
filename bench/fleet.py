"""Fleet benchmark: how many real-time wearables one ``vitalstream worker`` process follows on this machine.

For each N of a ladder: a fresh topic prefix and consumer group, N simulated wearables (``bench/fleetload.py``: a
1-s BIDMC PPG chunk and a numerics message per device-second) produced in real time by a separate process onto the
local broker, one worker process; after a warm-up, a steady window in which it measures whether the worker holds
real time (consumer lag not growing and small), p50/p99 window end (device time) -> feature publish and ingest ->
alert publish, worker CPU per input message, RSS, state bytes per device and changelog bytes per device-second.
Then a backlog-drain peak, and in the same run the raw aiokafka validate+dedup+forward loop of ``bench/ingest.py``
as the baseline ratio. Results in bench/results/fleet.json (and fleet.png).

    python bench/fleet.py [--ladder 100 300 1000] [--workers 1 2] [--warmup-s 30] [--steady-s 60]
    python bench/fleet.py --steps-only --ladder 2000 --workers 1 --steady-s 45   # one step, printed, nothing written

Also: the same fixed backlog through one worker and through two in one consumer group, with their features and
scores compared (``scale_out_equal``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import fleetload  # noqa: E402
import ingest as ingest_bench  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.kafka.devbroker import LocalKafka, up  # noqa: E402
from streamer.kafka.topics import ensure_topics  # noqa: E402


def _settings(bootstrap: str, partitions: int) -> Settings:
    prefix = f"fleet{uuid.uuid4().hex[:8]}."
    return Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix, app_id=f"{prefix}app", partitions=partitions,
        data_dir=Path("/tmp") / f"{prefix}worker", silence_timeout_s=600.0,
    )  # fmt: skip


def _worker(settings: Settings, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update({f"VITALS_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None})
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "streamer.cli.main", "worker"], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip


def _generator(settings: Settings, devices: int, seconds: float) -> subprocess.Popen:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import fleetload; "
        f"print(json.dumps(fleetload.generate({settings.kafka_bootstrap!r}, {settings.topics.telemetry!r}, "
        f"{devices}, {seconds})))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)


class Broker:
    """Consumer lag of the worker's group and log sizes, read through the admin API."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self.settings = settings
        self.admin = KafkaAdminClient(**settings.kafka_client_kwargs())
        self.consumer = KafkaConsumer(**settings.kafka_client_kwargs())

    def lag(self) -> int:
        """Input not yet processed: telemetry behind the ingest stage plus valid records behind the pipeline."""
        return sum(self.stage_lags().values())

    def stage_lags(self) -> dict[str, int]:
        """Records behind each stage: which one limits (ingest runs on the event loop and can race ahead of a
        pipeline starved of the GIL, so a total alone hides where the backlog is)."""
        from kafka import TopicPartition

        names, parts = self.settings.topics, range(self.settings.partitions)
        lags = {}
        for stage, topic in (("ingest", names.telemetry), ("pipeline", names.telemetry_valid)):
            tps = [TopicPartition(topic, p) for p in parts]
            committed, ends = self._offsets(stage), self.consumer.end_offsets(tps)
            lags[stage] = sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
        return lags

    def committed(self, topic: str) -> int:
        stage = "ingest" if topic == self.settings.topics.telemetry else "pipeline"
        return sum(o.offset for tp, o in self._offsets(stage).items() if tp.topic == topic)

    def _offsets(self, stage: str) -> dict[Any, Any]:
        """The committed offsets of a stage's consumer group (``{app_id}-{stage}``; monitoring only, see
        streamer/kafka/runner.py: the stages resume from their changelog markers, not from these)."""
        from kafka.errors import KafkaError

        group = f"{self.settings.app_id}-{stage}"
        for _ in range(10):  # the group coordinator may not be known yet right after the worker joined
            try:
                return self.admin.list_group_offsets({group: None}).get(group, {})
            except KafkaError as exc:
                print(f"group offsets not available yet: {exc!r}", file=sys.stderr)
                time.sleep(1)
        return {}

    def log_bytes(self, topic: str) -> int:
        def sizes(node: Any) -> int:
            if isinstance(node, dict):
                own = node.get("partition_size", node.get("size", 0))
                return (own if isinstance(own, int) else 0) + sum(sizes(v) for v in node.values())
            if isinstance(node, list | tuple):
                return sum(sizes(v) for v in node)
            return 0

        return sizes(self.admin.describe_log_dirs(topic_partitions=[topic]))

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


class Latencies(threading.Thread):
    """Follows the features and alerts topics: publish time minus window end, and alert ingest -> publish."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.features: list[tuple[int, int, str]] = []  # (publish ms, latency ms, signal)
        self.alerts: list[tuple[int, int]] = []
        self.unstamped: list[int] = []  # alerts raised by the clock (a tick), which carry no ingest stamp

    def run(self) -> None:
        from kafka import KafkaConsumer

        names = self.settings.topics
        consumer = KafkaConsumer(names.features, names.alerts, group_id=None, auto_offset_reset="earliest",
                                 consumer_timeout_ms=500, **self.settings.kafka_client_kwargs())  # fmt: skip
        while not self.stop.is_set():
            for rec in consumer:
                value = json.loads(rec.value)
                if rec.topic == names.features:
                    self.features.append((rec.timestamp, rec.timestamp - value["window_end_ms"], value["signal"]))
                else:
                    lat = value["latency"]
                    if lat.get("ingest_ts_ms") and lat.get("publish_ts_ms"):
                        self.alerts.append((rec.timestamp, lat["publish_ts_ms"] - lat["ingest_ts_ms"]))
                    else:
                        self.unstamped.append(rec.timestamp)
                if self.stop.is_set():
                    break
        consumer.close()


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _changelog(settings: Settings) -> str:
    from streamer.kafka.topics import changelog_topic

    return changelog_topic(settings, "pipeline")


def run_step(
    bootstrap: str, devices: int, warmup_s: float, steady_s: float, partitions: int, workers: int = 1
) -> dict[str, Any]:
    settings = _settings(bootstrap, partitions)
    ensure_topics(settings)
    procs = [_worker(settings, Path("/tmp") / f"{settings.topic_prefix}worker{i}.log") for i in range(workers)]
    proc = _Procs([fleetload.Proc(w.pid) for w in procs])
    time.sleep(8 + 4 * (workers - 1))  # worker start-up (imports, group join) before the wearables begin
    gen = _generator(settings, devices, warmup_s + steady_s + 5)
    lat = Latencies(settings)
    lat.start()
    broker = Broker(settings)
    try:
        time.sleep(warmup_s)
        t0, cpu0, split = time.time(), proc.cpu_s(), [broker.stage_lags()]
        busy0, gen0, own0 = _machine_busy_s(), fleetload.Proc(gen.pid).cpu_s(), time.process_time()
        in0, cl0 = broker.committed(settings.topics.telemetry), broker.log_bytes(_changelog(settings))
        while time.time() - t0 < steady_s:
            time.sleep(5)
            split.append(broker.stage_lags())
        lags = [sum(s.values()) for s in split]
        t1, cpu1, rss = time.time(), proc.cpu_s(), proc.rss_mb()
        busy1, gen1, own1 = _machine_busy_s(), fleetload.Proc(gen.pid).cpu_s(), time.process_time()
        in1, cl1 = broker.committed(settings.topics.telemetry), broker.log_bytes(_changelog(settings))
        gen_out = json.loads(gen.communicate(timeout=120)[0] or "{}")
    finally:
        lat.stop.set()
        _stop(procs)
        broker.close()
    span_ms = (int(t0 * 1000), int(t1 * 1000))
    by_signal: dict[str, list[int]] = {}
    for ts, v, signal in lat.features:
        if span_ms[0] <= ts <= span_ms[1]:
            by_signal.setdefault(signal, []).append(v)
    feat = [v for values in by_signal.values() for v in values]
    alerts = [v for ts, v in lat.alerts if span_ms[0] <= ts <= span_ms[1]]
    msgs = max(in1 - in0, 1)
    rate_in = devices * 2
    holds = lags[-1] - lags[0] <= 2 * rate_in and max(lags[-3:]) <= 10 * rate_in
    return {
        "devices": devices, "workers": workers, "input_msgs_per_s": rate_in, "holds_real_time": bool(holds),
        "lag_msgs": lags, "lag_by_stage_msgs": {k: [s[k] for s in split] for k in split[0]},
        "consumed_in_window": in1 - in0, "window_s": round(t1 - t0, 1),
        "window_end_to_feature_ms": {"p50": _pct(feat, 0.5), "p99": _pct(feat, 0.99), "n": len(feat)},
        "window_end_to_feature_ms_by_signal": {
            k: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99), "n": len(v)} for k, v in sorted(by_signal.items())
        },
        "ingest_to_alert_ms": {"p50": _pct(alerts, 0.5), "p99": _pct(alerts, 0.99), "n": len(alerts)},
        # Not in ingest_to_alert_ms: raised when the clock closed a window (no input message to time them from).
        "alerts_without_ingest_stamp": sum(span_ms[0] <= ts <= span_ms[1] for ts in lat.unstamped),
        "worker_cpu_us_per_msg": round((cpu1 - cpu0) / msgs * 1e6, 1),
        "worker_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 2), "worker_rss_mb": round(rss, 1),
        "changelog_bytes_per_device_s": round((cl1 - cl0) / devices / (t1 - t0), 1),
        "generator": gen_out, "load_avg": os.getloadavg(),
        # Whether the machine itself was the limit: every core's busy share over the window, and what the load
        # generator and this process (the latency consumer, lag queries) took of it; the broker has the rest.
        "machine_busy_share": round((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1e-9), 3),
        "generator_cpu_cores": round((gen1 - gen0) / (t1 - t0), 2),
        "bench_process_cpu_cores": round((own1 - own0) / (t1 - t0), 2),
    }  # fmt: skip


def run_drain(bootstrap: str, devices: int, seconds: int, partitions: int) -> dict[str, Any]:
    """A backlog of ``seconds`` of the fleet produced first; the worker's rate from its first committed input
    until both stages have committed all of it (polled every 0.25 s; a drain shorter than a few polls is refused)."""
    settings = _settings(bootstrap, partitions)
    ensure_topics(settings)
    sent = fleetload.backlog(bootstrap, settings.topics.telemetry, devices, seconds)
    broker = Broker(settings)
    worker = _worker(settings, Path("/tmp") / f"{settings.topic_prefix}worker.log")
    start, first, done = time.time(), None, None
    try:
        while time.time() - start < 600:
            time.sleep(0.25)
            ingested = broker.committed(settings.topics.telemetry)
            if first is None and ingested > 0:
                first = time.time()
            if ingested >= sent and broker.lag() == 0:
                done = time.time()
                break
    finally:
        _stop([worker])
        broker.close()
    elapsed = (done - first) if done and first and done - first >= 1.0 else None
    return {"messages": sent, "seconds_to_drain": round(elapsed, 2) if elapsed else None,
            "msgs_per_s": round(sent / elapsed, 1) if elapsed else None}  # fmt: skip


class _Procs:
    """CPU and memory of several worker processes together."""

    def __init__(self, procs: list[fleetload.Proc]) -> None:
        self.procs = procs

    def cpu_s(self) -> float:
        return sum(p.cpu_s() for p in self.procs)

    def rss_mb(self) -> float:
        return sum(p.rss_mb() for p in self.procs)


def _machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = float(os.sysconf("SC_CLK_TCK"))
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _stop(procs: list[subprocess.Popen]) -> None:
    for w in procs:
        w.terminate()
    for w in procs:
        w.wait(60)


def _outputs(settings: Settings, quiet_s: float = 15.0) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Every feature and score published under ``settings``' prefix, read until nothing new came for ``quiet_s``."""
    from kafka import KafkaConsumer

    names = settings.topics
    consumer = KafkaConsumer(names.features, names.scores, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=int(quiet_s * 1000), **settings.kafka_client_kwargs())  # fmt: skip
    out: dict[str, dict[tuple[Any, ...], Any]] = {"features": {}, "scores": {}}
    for rec in consumer:
        v = json.loads(rec.value)
        if rec.topic == names.features:
            out["features"][(v["device_id"], v["signal"], v["window_start_ms"], v["window_end_ms"])] = v["features"]
        else:
            out["scores"][(v["device_id"], v["model"]["name"], v.get("source"), v["ts_ms"])] = v["score"]
    consumer.close()
    return out


def _max_diff(a: dict[tuple[Any, ...], Any], b: dict[tuple[Any, ...], Any]) -> float:
    worst = 0.0
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        pairs = [(x.get(k), y.get(k)) for k in x.keys() | y.keys()] if isinstance(x, dict) else [(x, y)]
        for u, v in pairs:
            if isinstance(u, int | float) and isinstance(v, int | float):
                if not (u != u and v != v):  # NaN on both sides is equal
                    worst = max(worst, abs(u - v))
            elif u != v:
                worst = float("inf")
    return worst


def run_scaleout(bootstrap: str, devices: int, seconds: int, partitions: int) -> dict[str, Any]:
    """The same backlog through one worker and through two in one group: the outputs must be equal."""
    runs = {}
    for workers in (1, 2):
        # A short silence timeout: the last windows close on it even where a worker cannot see that ingest is
        # done (the stage groups assign partitions independently: pipeline partition p's ingest may be elsewhere).
        settings = _settings(bootstrap, partitions).model_copy(update={"silence_timeout_s": 10.0})
        ensure_topics(settings)
        fleetload.backlog(bootstrap, settings.topics.telemetry, devices, seconds, t0_ms=1_700_000_000_000)
        procs = [_worker(settings, Path("/tmp") / f"{settings.topic_prefix}worker{i}.log") for i in range(workers)]
        try:
            time.sleep(30)
            runs[workers] = _outputs(settings)
        finally:
            _stop(procs)
    one, two = runs[1], runs[2]
    return {
        "devices": devices, "seconds": seconds,
        "features": {"one_worker": len(one["features"]), "two_workers": len(two["features"]),
                     "only_one_side": len(one["features"].keys() ^ two["features"].keys()),
                     "max_abs_diff": _max_diff(one["features"], two["features"])},
        "scores": {"one_worker": len(one["scores"]), "two_workers": len(two["scores"]),
                   "only_one_side": len(one["scores"].keys() ^ two["scores"].keys()),
                   "max_abs_diff": _max_diff(one["scores"], two["scores"])},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="a ladder for each worker count")
    parser.add_argument("--warmup-s", type=float, default=30)
    parser.add_argument("--steady-s", type=float, default=60)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--drain-devices", type=int, default=300)
    parser.add_argument("--drain-s", type=int, default=20)
    parser.add_argument("--scaleout-devices", type=int, default=200)
    parser.add_argument("--scaleout-s", type=int, default=30)
    parser.add_argument(
        "--steps-only", action="store_true", help="only the ladder's steps, printed as JSON lines; fleet.json untouched"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    bootstrap = os.environ.get("VITALS_KAFKA_BOOTSTRAP") or up(LocalKafka(name="fleet", port=39092,
                                                                          controller_port=39093))  # fmt: skip
    steps = []
    for workers in args.workers:
        for n in args.ladder:
            step = run_step(bootstrap, n, args.warmup_s, args.steady_s, args.partitions, workers)
            steps.append(step)
            print(json.dumps(step), flush=True)
            if not step["holds_real_time"]:
                break  # the next rung would only fall further behind
    if args.steps_only:
        return
    drain = run_drain(bootstrap, args.drain_devices, args.drain_s, args.partitions)
    print("drain", json.dumps(drain), flush=True)
    scaleout = run_scaleout(bootstrap, args.scaleout_devices, args.scaleout_s, args.partitions)
    print("scale-out", json.dumps(scaleout), flush=True)
    templates, now_ms = fleetload.load_templates(30), int(time.time() * 1000) - 30_000
    messages = [m for sec in range(25) for d in range(200)
                for m in fleetload.device_messages(templates, d, sec, now_ms + sec * 1000)]  # fmt: skip
    raw_rates = [ingest_bench.run_raw(bootstrap, messages) for _ in range(3)]
    raw = statistics.median(raw_rates)
    held = {w: max([s["devices"] for s in steps if s["holds_real_time"] and s["workers"] == w], default=0)
            for w in args.workers}  # fmt: skip
    out = {
        "what": __doc__.split("\n\n")[0], "ladder": steps, "max_devices_held": held.get(1, 0),
        "max_devices_held_by_workers": held, "backlog_drain": drain, "scale_out_equal": scaleout,
        "raw_aiokafka_msgs_per_s": round(raw, 1),
        "drain_to_raw_ratio": round(drain["msgs_per_s"] / raw, 4) if drain["msgs_per_s"] else None,
        "checkpoint_s": Settings().checkpoint_s,
        "machine": ingest_bench._machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    _plot(out, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for workers in sorted({s.get("workers", 1) for s in out["ladder"]}):
        _plot_ladder(a, b, [s for s in out["ladder"] if s.get("workers", 1) == workers], workers)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_ladder(a: Any, b: Any, steps: list[dict[str, Any]], workers: int) -> None:
    n = [s["devices"] for s in steps]
    tag = f"{workers} worker{'s' if workers > 1 else ''}"
    a.plot(n, [s["worker_cpu_us_per_msg"] for s in steps], "o-", label=tag)
    a.set(xscale="log", xlabel="devices", ylabel="worker CPU per input message (us)", title="cost per message")
    b.plot(
        n, [s["window_end_to_feature_ms"]["p99"] or 0 for s in steps], "o-", label=f"p99 window end -> feature, {tag}"
    )
    b.plot(n, [s["window_end_to_feature_ms"]["p50"] or 0 for s in steps], "o-", label=f"p50, {tag}")
    b.set(xscale="log", yscale="log", xlabel="devices", ylabel="ms", title="latency")
    a.legend()
    b.legend(fontsize=7)
    for s in steps:
        a.annotate("holds" if s["holds_real_time"] else "behind", (s["devices"], s["worker_cpu_us_per_msg"]))


if __name__ == "__main__":
    main()
