"""The broker half of bench/fuzz.py: hostile inputs interleaved with good traffic through a real worker.

Every input must be accounted for: forwarded to the valid topic, dead-lettered with its original bytes, or dropped
as a duplicate exactly where an offline replay of validation and dedup (same code, same order per key) says so.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.fuzz import LIMITS, iter_cases
from bench.fuzz_cases import good_message
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, validate

REPO = Path(__file__).resolve().parent.parent


def _key(raw: bytes, rng: random.Random) -> bytes | None:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    device = obj.get("device_id") if isinstance(obj, dict) else None
    if not isinstance(device, str):
        return None
    return b"wrong-key" if rng.random() < 0.05 else device.encode()


def _traffic(n: int, seed: int, now_ms: int) -> list[tuple[bytes | None, bytes]]:
    rng = random.Random(seed + 1)
    hostile = [raw for _, raw in iter_cases(seed, n, now_ms)]
    rng.shuffle(hostile)
    out: list[tuple[bytes | None, bytes]] = []
    for i, raw in enumerate(hostile):
        good = {**good_message(rng, now_ms), "device_id": f"good-{i % 20}", "seq": i}
        out += [(f"good-{i % 20}".encode(), json.dumps(good).encode()), (_key(raw, rng), raw)]
    return out


def _predicted_duplicates(traffic: list[tuple[bytes | None, bytes]], now_ms: int, window: int) -> Counter[bytes]:
    trackers: dict[bytes, SeqTracker] = {}
    dups: Counter[bytes] = Counter()
    for key, raw in traffic:
        result = validate(raw, now_ms=now_ms, **LIMITS)
        if not isinstance(result, Accepted) or key != result.message.device_id.encode():
            continue
        tracker = trackers.setdefault(key, SeqTracker.from_state(None, window))
        if tracker.check(result.message.seq, result.message.ts_ms) is SeqStatus.DUPLICATE:
            dups[raw] += 1
    return dups


def run_broker(n: int, seed: int) -> dict:
    from streamer.config import Settings
    from streamer.kafka.clients import consume, producer
    from streamer.kafka.devbroker import LocalKafka, up
    from streamer.kafka.topics import ensure_topics

    port = int(os.environ.get("VITALS_TEST_KAFKA_PORT", "19092"))
    bootstrap = os.environ.get("VITALS_KAFKA_BOOTSTRAP") or up(
        LocalKafka(name=f"test-{port}", port=port, controller_port=port + 1)
    )
    prefix = f"fz{uuid.uuid4().hex[:8]}."
    work = Path(tempfile.mkdtemp(prefix="fuzz-worker-"))
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix, app_id=f"{prefix}app", partitions=4, data_dir=work
    )
    ensure_topics(settings)
    env = {**os.environ, "VITALS_KAFKA_BOOTSTRAP": bootstrap, "VITALS_TOPIC_PREFIX": prefix,
           "VITALS_APP_ID": f"{prefix}app", "VITALS_PARTITIONS": "4", "VITALS_DATA_DIR": str(work)}  # fmt: skip
    log_path = work / "worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "streamer.cli.main", "worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_ready(worker, log_path)
        now_ms = int(time.time() * 1000)
        traffic = _traffic(n, seed, now_ms)
        prod = producer(settings)
        failures: list[Exception] = []
        for key, raw in traffic:
            prod.send(settings.topics.telemetry, key=key, value=raw).add_errback(failures.append)
        prod.flush()
        prod.close()
        got: Counter[bytes] = Counter()
        for record in consume(settings, [settings.topics.telemetry_valid], from_beginning=True, idle_timeout_s=20):
            got[record.value] += 1
        forwarded = sum(got.values())
        stale: Counter[bytes] = Counter()
        for record in consume(settings, [settings.topics.dlq], from_beginning=True, idle_timeout_s=10):
            letter = json.loads(record.value)
            original = base64.b64decode(letter["original_b64"])
            got[original] += 1
            stale[original] += letter["reason_code"] == "STALE_SEQ"
        dups = _predicted_duplicates(traffic, now_ms, settings.dedup_window)
        sent = Counter(raw for _, raw in traffic)
        alive = worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(60)
    text = log_path.read_text(errors="replace")
    crashes = text.count("Traceback") + text.count("crashed") + (0 if alive else 1)
    unaccounted = sum((sent - (got + dups)).values())
    surplus = (got + dups) - sent
    # A resend more than the dedup window below a device's highest seq: the offline tracker (never persisted) still
    # remembers it and predicts DUPLICATE, the worker (state round-tripped through its table between batches, which
    # keeps only the window) dead-letters it as STALE_SEQ. Accounted for either way; counted apart.
    stale_not_duplicate = sum(min(n, stale[raw]) for raw, n in surplus.items())
    extra = sum(surplus.values()) - stale_not_duplicate
    return {
        "sent": sum(sent.values()),
        "hostile": n,
        "good": len(traffic) - n,
        "produce_failures": len(failures),
        "forwarded": forwarded,
        "dead_lettered": sum(got.values()) - forwarded,
        "duplicates_predicted": sum(dups.values()),
        "unaccounted": unaccounted,
        "extra_outputs": extra,
        "predicted_duplicate_but_stale_seq": stale_not_duplicate,
        "agent_crashes": crashes,
        "failed": bool(unaccounted or extra or crashes or failures),
    }


def _wait_ready(worker: subprocess.Popen, log_path: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited {worker.returncode}: {log_path.read_text()[-2000:]}")
        if "Worker]: Ready" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"worker not ready in {timeout_s} s")
