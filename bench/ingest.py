"""Ingest throughput on the local broker: a raw aiokafka forwarder against the Faust ingest agent.

Both do the same work per message (validate with the wire contract, dedup by (device_id, seq), forward the bytes to
the next topic). N one-second telemetry chunks (125 Hz PPG or numerics, about 1 KB) are produced first; the rate is
(N - 1) / (last - first) over the CreateTime stamps of the forwarded records, so start-up is not counted. Median of
``--runs`` runs per variant; results in bench/results/ingest.json with the machine noted.

    python bench/ingest.py [--messages 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.config import Settings  # noqa: E402
from streamer.ingest.dedup import SeqStatus, SeqTracker  # noqa: E402
from streamer.ingest.validation import Accepted, validate  # noqa: E402
from streamer.kafka.clients import producer  # noqa: E402
from streamer.kafka.devbroker import LocalKafka, up  # noqa: E402
from streamer.kafka.topics import ensure_topics  # noqa: E402


def _messages(n: int, devices: int = 200) -> list[tuple[bytes, bytes]]:
    rng = random.Random(7)
    now = int(time.time() * 1000) - 3_600_000
    out = []
    for i in range(n):
        dev, seq = f"bench-{i % devices:04d}", i // devices
        body: dict[str, object] = {"device_id": dev, "ts_ms": now + seq * 1000, "seq": seq}
        if seq % 4 == 3:
            body |= {
                "kind": "vitals",
                "heart_rate_bpm": round(rng.uniform(55, 110), 1),
                "spo2_pct": 97.0,
                "resp_rate_bpm": 16.0,
            }
        else:
            body |= {
                "kind": "waveform",
                "signal": "ppg",
                "fs_hz": 125,
                "samples": [round(rng.random(), 3) for _ in range(125)],
            }
        out.append((dev.encode(), json.dumps(body, separators=(",", ":")).encode()))
    return out


def _produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    prod = producer(settings, linger_ms=20)
    for key, value in messages:
        prod.send(settings.topics.telemetry, key=key, value=value)
    prod.flush()
    prod.close()


def _forwarded_rate(settings: Settings, n: int, timeout_s: float = 600) -> float:
    """Rate from the CreateTime stamps of the n forwarded records (waits until all are there)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topics.telemetry_valid,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        **settings.kafka_client_kwargs(),
    )
    stamps: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(stamps) < n and time.monotonic() < deadline:
        stamps.extend(r.timestamp for r in consumer)
    consumer.close()
    if len(stamps) < n:
        raise RuntimeError(f"only {len(stamps)} of {n} forwarded")
    return (n - 1) / max((max(stamps) - min(stamps)) / 1000, 1e-3)


async def _aiokafka_forwarder(settings: Settings, n: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        settings.topics.telemetry,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-raw",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    prod = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await consumer.start()
    await prod.start()
    trackers: dict[bytes, SeqTracker] = {}
    done = 0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            futures = []
            for records in batches.values():
                for rec in records:
                    done += 1
                    result = validate(
                        rec.value, now_ms=int(time.time() * 1000), max_message_bytes=1 << 20, future_margin_ms=60_000
                    )
                    if not isinstance(result, Accepted):
                        continue
                    tracker = trackers.setdefault(rec.key, SeqTracker())
                    if tracker.check(result.message.seq, result.message.ts_ms) is SeqStatus.NEW:
                        futures.append(await prod.send(settings.topics.telemetry_valid, rec.value, key=rec.key))
            if futures:
                await asyncio.gather(*futures)
    finally:
        await prod.stop()
        await consumer.stop()


def _settings(bootstrap: str, **overrides: object) -> Settings:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}app",
        partitions=4,
        data_dir=Path("/tmp") / f"{prefix}worker",
        **overrides,
    )


def run_raw(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> float:
    settings = _settings(bootstrap)
    ensure_topics(settings)
    _produce(settings, messages)
    asyncio.run(_aiokafka_forwarder(settings, len(messages)))
    return _forwarded_rate(settings, len(messages))


def run_faust(bootstrap: str, messages: list[tuple[bytes, bytes]], take_max: int) -> float:
    settings = _settings(bootstrap, stream_take_max=take_max)
    ensure_topics(settings)
    _produce(settings, messages)
    env = dict(os.environ)
    env.update({f"VITALS_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None})
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli.main", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _forwarded_rate(settings, len(messages))
    finally:
        proc.terminate()
        proc.wait(60)


def _machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--take",
        type=int,
        nargs="+",
        default=[1, 100, 500, 2000],
        help="Faust stream.take_events batch sizes to measure (1 = one message at a time)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    bootstrap = os.environ.get("VITALS_KAFKA_BOOTSTRAP") or up(LocalKafka())
    messages = _messages(args.messages)
    size = statistics.mean(len(v) for _, v in messages)
    variants = {"aiokafka_raw": lambda: run_raw(bootstrap, messages)}
    for take in args.take:
        variants[f"faust_agent_take_{take}"] = lambda take=take: run_faust(bootstrap, messages, take_max=take)
    results: dict[str, dict[str, object]] = {}
    for name, fn in variants.items():
        rates = [fn() for _ in range(args.runs)]
        results[name] = {"msgs_per_s_median": round(statistics.median(rates), 1), "runs": [round(r, 1) for r in rates]}
        print(f"{name:28s} {statistics.median(rates):10.0f} msg/s  runs={results[name]['runs']}", flush=True)
    raw = results["aiokafka_raw"]["msgs_per_s_median"]
    out = {
        "what": "validate + dedup + forward, 1-s telemetry chunks (125 Hz PPG or numerics), local single-node broker",
        "messages_per_run": args.messages,
        "mean_message_bytes": round(size),
        "runs": args.runs,
        "results": results,
        "ratios_to_aiokafka_raw": {k: round(v["msgs_per_s_median"] / raw, 3) for k, v in results.items()},
        "machine": _machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
