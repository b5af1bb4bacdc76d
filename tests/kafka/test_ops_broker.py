"""Operating a worker on the real broker: /health, /ready and /metrics follow the traffic; ``ack SHORT_ID`` works."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.kafka.clients import consume, producer
from streamer.kafka.topics import ensure_topics
from streamer.offline.golden import GOLDENS, expected_path, session_path
from streamer.sessions.format import SessionRecord, read_session
from tests.conftest import REPO_ROOT, settings_env

pytestmark = pytest.mark.integration
QUIET = {"silence_timeout_s": 3600.0}  # no wall-clock DEVICE_SILENT while the test machine is slow
# Web ports given to this clone's tests; VITALS_TEST_WEB_PORTS=29380-29389 picks another range.
WEB_PORTS = os.environ.get("VITALS_TEST_WEB_PORTS", "29380-29389")
BAD = [  # (value, reason) sent under key "ops-bad"
    (b"\x00\x01 not json at all", "MALFORMED_JSON"),
    (b'{"kind":"vitals","device_id":"ops-bad","ts_ms":1,"seq":1,"spo2_pct":104}', "IMPOSSIBLE_VALUE"),
    (b'{"kind":"vitals","device_id":"ops-bad","ts_ms":1,"seq":2,"spo2_pct":140}', "IMPOSSIBLE_VALUE"),
]


def _free_port() -> int:
    low, high = (int(p) for p in WEB_PORTS.split("-"))
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {WEB_PORTS} (VITALS_TEST_WEB_PORTS)")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of every sample on /metrics."""
    status, body = _get(port, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def _wait(predicate, what: str, timeout_s: float = 180.0):  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` returns something true (a wait for the worker, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _session(name: str) -> list[SessionRecord]:
    return list(read_session(session_path(next(g for g in GOLDENS if g.name == name))))


def _produce(settings, pairs: list[tuple[bytes | None, bytes]]) -> None:
    prod = producer(settings)
    for key, value in pairs:
        prod.send(settings.topics.telemetry, key=key, value=value)
    prod.flush()
    prod.close()


def test_worker_serves_health_ready_and_metrics_that_follow_traffic(settings_factory, worker_factory) -> None:
    port = _free_port()
    settings = settings_factory(web_port=port, log_format="json", checkpoint_s=1, **QUIET)
    ensure_topics(settings)
    worker = worker_factory(settings)
    assert _get(port, "/health")[0] == 200
    ready = _wait(lambda: (r := _get(port, "/ready"))[0] == 200 and r, "/ready to answer 200")
    assert json.loads(ready[1])["checks"] == {"assigned": True, "restored": True, "consuming": True,
                                              "models_loaded": True}  # fmt: skip
    before = _scrape(port)
    assert _total(before, "vitals_messages_in_total", agent="ingest") == 0
    assert _total(before, "vitals_model_loaded", model="af") == 1

    records = _session("mitdb100_clean")
    _produce(settings, [(r.key, r.value) for r in records] + [(b"ops-bad", value) for value, _ in BAD])
    sent = len(records) + len(BAD)
    after = _wait(
        lambda: (m := _scrape(port)) and _total(m, "vitals_messages_in_total", agent="pipeline") > 0
        and _total(m, "vitals_messages_in_total", agent="ingest") >= sent
        and _total(m, "vitals_state_bytes") > 0 and m,  # device states are written a second after they change
        "the worker to count the traffic",
    )  # fmt: skip
    valid = _total(after, "vitals_ingest_valid_total")
    dead = {reason: _total(after, "vitals_dead_letters_total", reason=reason) for _, reason in BAD}
    # A fault-free start reads every record once (a batch fetched before a rebalance is dropped, and the new
    # assignment is restored outside aiokafka's callback, so the member is never expired while restoring).
    assert _total(after, "vitals_messages_in_total", agent="ingest") == sent
    assert valid + _total(after, "vitals_ingest_duplicates_total") + _total(after, "vitals_dead_letters_total") == sent
    assert dead == {"MALFORMED_JSON": 1, "IMPOSSIBLE_VALUE": 2}
    assert _total(after, "vitals_batch_records_count", agent="ingest") >= 1
    assert _total(after, "vitals_batch_processing_seconds_sum", agent="ingest") > 0
    assert _total(after, "vitals_devices") >= 1 and _total(after, "vitals_state_bytes") > 0
    # Every valid record reaches the pipeline agent, and the lag of the telemetry partitions drains to zero.
    drained = _wait(
        lambda: (m := _scrape(port)) and _total(m, "vitals_messages_in_total", agent="pipeline") == valid and m,
        "the pipeline agent to read every valid record",
    )
    lag = {lab: v for (n, lab), v in drained.items() if n == "vitals_consumer_lag"}
    assert {dict(lab)["topic"] for lab in lag} >= {settings.topics.telemetry, settings.topics.telemetry_valid}
    assert len({dict(lab)["partition"] for lab in lag if dict(lab)["topic"] == settings.topics.telemetry}) == 4
    assert sum(v for lab, v in lag.items() if dict(lab)["topic"] == settings.topics.telemetry) == 0
    assert _total(drained, "vitals_inference_seconds_count") > 0  # windows of 300 s of ECG reached the models
    assert _total(drained, "vitals_ready") == 1

    lines = [json.loads(line) for line in worker.log_text().splitlines() if line.strip()]  # JSON lines only
    letters = [line for line in lines if line["message"].startswith("dead-letter ")]
    # one line at once per reason, not one per letter; the second IMPOSSIBLE_VALUE waits for the summary
    assert sorted(line["reason_code"] for line in letters) == ["IMPOSSIBLE_VALUE", "MALFORMED_JSON"]
    assert all(line["src"].startswith(f"{settings.topics.telemetry}[") for line in letters)


def _alerts_by_id(settings) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = defaultdict(list)
    for record in consume(settings, [settings.topics.alerts], from_beginning=True, idle_timeout_s=3.0):
        alert = json.loads(record.value)
        by_id[alert["alert_id"]].append(alert)
    return by_id


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", *args],
        cwd=REPO_ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ack_by_short_id_waits_for_the_acknowledged_transition(settings_factory, worker_factory) -> None:
    settings = settings_factory(**QUIET)
    ensure_topics(settings)
    worker_factory(settings)
    golden = next(g for g in GOLDENS if g.name == "mitdb202_af_onset")  # ends inside an AF episode
    records = list(read_session(session_path(golden)))
    expected = json.loads(expected_path(golden).read_text())["alerts"]  # kept equal to the code by test_golden
    _produce(settings, [(r.key, r.value) for r in records])
    by_id = _wait(lambda: (h := _alerts_by_id(settings)) and sum(map(len, h.values())) >= len(expected) and h,
                  "the alerts of the recording")  # fmt: skip
    open_ids = sorted(i for i, hist in by_id.items() if hist[-1]["state"] in ("RAISED", "ESCALATED"))
    resolved_ids = sorted(i for i, hist in by_id.items() if hist[-1]["state"] == "RESOLVED")
    assert open_ids and resolved_ids, by_id
    alert_id = open_ids[0]
    short = alert_id[:12]

    resolved = _cli(settings, "ack", resolved_ids[0][:12])
    assert resolved.returncode == 1 and "is resolved: nothing to acknowledge" in resolved.stderr
    unknown = _cli(settings, "ack", "ffff" + "0" * 8)
    assert unknown.returncode == 1 and "no alert id starts with ffff00000000" in unknown.stderr
    assert _cli(settings, "ack", "zz-not-hex").returncode == 1

    acked = _cli(settings, "ack", short.upper(), "--by", "nurse-7", "--timeout", "60")
    assert acked.returncode == 0, acked.stderr
    assert f"{short} " in acked.stdout and "ACKNOWLEDGED by nurse-7" in acked.stdout
    history = _alerts_by_id(settings)[alert_id]
    confirmed = [a for a in history if a["state"] == "ACKNOWLEDGED"]
    assert len(confirmed) == 1 and confirmed[0]["evidence"]["values"]["by"] == "nurse-7"

    again = _cli(settings, "ack", short, "--by", "nurse-8")
    assert again.returncode == 0 and "already acknowledged" in again.stdout
    assert sum(a["state"] == "ACKNOWLEDGED" for a in _alerts_by_id(settings)[alert_id]) == 1
