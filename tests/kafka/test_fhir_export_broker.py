"""The FHIR export on the real broker: the optional agent's Bundles and ``vitalstream export fhir`` validate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamer.kafka.clients import consume, producer
from streamer.kafka.fhir_export import fhir_topic_name
from streamer.kafka.topics import ensure_topics
from streamer.offline.golden import GOLDENS, session_path
from streamer.sessions.format import read_session
from tests.conftest import REPO_ROOT, settings_env
from tests.fhir_validation import dangling_references, resources_of, validate_bundle

pytestmark = pytest.mark.integration
QUIET = {"silence_timeout_s": 3600.0}  # no wall-clock DEVICE_SILENT while the machine is slow


def _produce_af_session(settings) -> None:
    prod = producer(settings)
    for r in read_session(session_path(next(g for g in GOLDENS if g.name == "mitdb202_af_onset"))):
        prod.send(settings.topics.telemetry, key=r.key, value=r.value)
    prod.send(settings.topics.features, key=b"mitdb-202", value=b'{"not": "a feature record"}')
    prod.flush()
    prod.close()


def _bundles_until_af(settings, timeout_s: float = 240, quiet_s: float = 4) -> list[dict]:
    """FHIR Bundles from vitals.fhir until one holds an AF DetectedIssue, then until a quiet spell."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(fhir_topic_name(settings), group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, **settings.kafka_client_kwargs())  # fmt: skip
    got: list[dict] = []
    deadline, quiet_since = time.monotonic() + timeout_s, None
    try:
        while time.monotonic() < deadline:
            n = len(got)
            got += [json.loads(r.value) for r in consumer]
            if len(got) == n and any(_af_issue(b) for b in got):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_s:
                    break
            else:
                quiet_since = None
    finally:
        consumer.close()
    return got


def _af_issue(bundle: dict) -> bool:
    return any(i["code"]["coding"][0]["code"] == "AF_EPISODE" for i in resources_of(bundle, "DetectedIssue"))


def test_export_agent_and_command_produce_valid_bundles(settings_factory, worker_factory, tmp_path: Path) -> None:
    settings = settings_factory(fhir_export=True, **QUIET)
    ensure_topics(settings)
    worker_factory(settings)
    _produce_af_session(settings)

    bundles = _bundles_until_af(settings)
    assert len(bundles) > 100
    for bundle in bundles:
        validate_bundle(bundle)
        assert bundle["type"] == "transaction" and dangling_references(bundle) == set()
    kinds = {e["resource"]["resourceType"] for b in bundles for e in b["entry"]}
    assert kinds == {"Device", "Observation", "DetectedIssue"}

    letters = [
        json.loads(r.value) for r in consume(settings, [settings.topics.dlq], from_beginning=True, idle_timeout_s=3)
    ]
    assert [(d["source_topic"], d["reason_code"]) for d in letters] == [(settings.topics.features, "SCHEMA_VIOLATION")]

    out = tmp_path / "export.json"
    subprocess.run([sys.executable, "-m", "streamer.cli.main", "export", "fhir", "-o", str(out), "--idle-timeout", "3"],
                   cwd=REPO_ROOT, env=settings_env(settings), check=True, capture_output=True)  # fmt: skip
    exported = json.loads(out.read_text())
    validate_bundle(exported)
    assert dangling_references(exported) == set()
    alerts = [
        json.loads(r.value) for r in consume(settings, [settings.topics.alerts], from_beginning=True, idle_timeout_s=3)
    ]
    issues = resources_of(exported, "DetectedIssue")
    assert sorted(i["identifier"][0]["value"] for i in issues) == sorted({a["alert_id"] for a in alerts})
    assert _af_issue(exported)
