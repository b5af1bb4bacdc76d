"""``make demo``: local broker, a worker, real recordings replayed at x20, alerts live on screen, then a summary.

Recordings (../shared/data, see its README for licenses and citations): MIT-BIH record 203 (AF episodes with
multiform PVCs; Moody & Mark 2001) and BIDMC record 01 (ICU PPG, ECG, respiration and monitor numerics; Pimentel
et al. 2017), plus a few deliberately malformed messages to show the dead-letter topic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from streamer.cli.alerts import HEADER, table_row
from streamer.config import Settings, recordings_dir
from streamer.contracts import Alert
from streamer.kafka.clients import consume, producer
from streamer.kafka.devbroker import LocalKafka, up
from streamer.sessions.importers import write_session

REPO = Path(__file__).resolve().parents[2]
DATA = recordings_dir()
BAD_LINES = [
    b'{"kind":"vitals","device_id":"demo-bad","ts_ms":1,"seq":1,"heart_rate_bpm":0}',
    b'{"kind":"vitals","device_id":"demo-bad","ts_ms":1,"seq":2,"spo2_pct":104}',
    b'{"kind":"waveform","device_id":"demo-bad","ts_ms":1,"seq":3,"signal":"ppg","fs_hz":0,"samples":[1]}',
    b'{"kind":"vitals","device_id":"demo-bad", "ts_ms":',
    b"\x00\x01 not json at all",
]


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in settings.model_dump().items():
        if v is not None and not isinstance(v, dict):
            env[f"VITALS_{k.upper()}"] = str(v.get_secret_value() if hasattr(v, "get_secret_value") else v)
    return env


def in_device_time(alerts: list[Alert]) -> list[Alert]:
    """Transitions in device-time order (arrival order interleaves partitions and devices)."""
    return sorted(alerts, key=lambda a: (a.transition_ts_ms, a.device_id, a.alert_id, a.state.value))


def _follow_alerts(settings: Settings, stop: threading.Event, seen: list[Alert]) -> None:
    print(HEADER, flush=True)
    while not stop.is_set():
        # each pass re-reads the topic for a second of quiet; what is new is shown in device-time order
        fresh = []
        for record in consume(settings, [settings.topics.alerts], from_beginning=True, idle_timeout_s=1.0):
            alert = Alert.model_validate_json(record.value)
            if alert not in seen and alert not in fresh:
                fresh.append(alert)
        for alert in in_device_time(fresh):
            seen.append(alert)
            print(table_row(alert), flush=True)


def _count(settings: Settings, topic: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for record in consume(settings, [topic], from_beginning=True, idle_timeout_s=2.0):
        counts["records"] += 1
        if topic == settings.topics.dlq:
            counts[json.loads(record.value)["reason_code"]] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.cli.demo", description=__doc__)
    parser.add_argument("--speed", type=float, default=20.0)
    args = parser.parse_args(argv)
    work = REPO / "var" / "demo"
    work.mkdir(parents=True, exist_ok=True)

    configured = Settings()  # VITALS_KAFKA_BOOTSTRAP, VITALS_TOPIC_PREFIX, TLS/SASL as for any command
    local = "VITALS_KAFKA_BOOTSTRAP" not in os.environ
    _say("1/5 local Kafka broker (KRaft, 127.0.0.1:9092)" if local else f"1/5 Kafka at {configured.kafka_bootstrap}")
    bootstrap = up(LocalKafka()) if local else configured.kafka_bootstrap
    run = time.strftime("%H%M%S")
    settings = configured.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "topic_prefix": f"{configured.topic_prefix}demo{run}.",  # under the configured prefix, one run each
            "app_id": f"{configured.topic_prefix}demo{run}",
            "data_dir": work / f"worker-{run}",
            "partitions": 4,
            "web_port": 0,  # the demo's worker serves no endpoints (a worker of yours may hold the port)
        }
    )
    print(f"bootstrap {bootstrap}; topics prefixed '{settings.topic_prefix}'")

    _say("2/5 importing real recordings from ../shared/data")
    sessions = []
    for kind, path, name in (
        ("wfdb", DATA / "mitdb" / "203", "mitdb203"),
        ("bidmc", DATA / "bidmc" / "bidmc_01_Signals.csv.gz", "bidmc01"),
    ):
        out = work / f"{name}.jsonl.gz"
        summary = write_session(kind, path, out)
        sessions.append(out)
        print(f"{name}: {sum(summary.messages.values())} telemetry messages -> {out.relative_to(REPO)}")

    _say("3/5 starting a worker (log: var/demo/worker.log)")
    from streamer.kafka.topics import ensure_topics

    ensure_topics(settings)
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli.main", "worker"],
        cwd=REPO,
        env=_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "Worker]: Ready" not in (work / "worker.log").read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                print((work / "worker.log").read_text(errors="replace")[-2000:])
                return 1
            time.sleep(0.5)
        return _replay_and_watch(settings, sessions, args.speed, local)
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()


def _replay_and_watch(settings: Settings, sessions: list[Path], speed: float, local_broker: bool) -> int:
    _say(f"4/5 replaying at x{speed:g} (timestamps end at now); alerts as they are published:")
    prod = producer(settings)
    for line in BAD_LINES:
        prod.send(settings.topics.telemetry, key=b"demo-bad", value=line)
    prod.flush()
    prod.close()
    stop, seen = threading.Event(), list[Alert]()
    follower = threading.Thread(target=_follow_alerts, args=(settings, stop, seen), daemon=True)
    follower.start()
    replays = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamer.cli.main",
                "replay",
                str(s),
                "--speed",
                str(speed),
                "--anchor",
                "end",
                "--no-progress",
            ],
            cwd=REPO,
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for s in sessions
    ]
    sent_lines = [p.communicate()[0].decode().strip() for p in replays]
    time.sleep(8)  # the last batches and wall-clock window closes
    stop.set()
    follower.join(15)

    _say("5/5 summary")
    for text in sent_lines:
        print("replay:", text)
    valid, dlq = _count(settings, settings.topics.telemetry_valid), _count(settings, settings.topics.dlq)
    features = _count(settings, settings.topics.features)
    scores = _count(settings, settings.topics.scores)
    print(f"validated and forwarded: {valid['records']}")
    print(f"dead-lettered: {dlq['records']} " + json.dumps({k: v for k, v in dlq.items() if k != "records"}))
    print(f"feature windows: {features['records']}; model scores: {scores['records']}")
    by_condition = Counter((a.condition.value, a.priority.value) for a in seen if a.state.value == "RAISED")
    print(f"alert transitions in device-time order (live above: as they arrived, {len(seen)} in all):")
    print(HEADER)
    for alert in in_device_time(seen):
        print(table_row(alert))
    print("episodes raised by condition and priority:")
    for (condition, priority), n in sorted(by_condition.items()):
        print(f"  {condition:20s} {priority:6s} {n}")
    print(f"\nFollow them yourself: VITALS_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} "
          f"VITALS_TOPIC_PREFIX={settings.topic_prefix} .venv/bin/vitalstream alerts --from-beginning")  # fmt: skip
    if local_broker:
        print("Stop the broker: make kafka-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
