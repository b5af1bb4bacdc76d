"""The metrics that docs/OPERATIONS.md, the alerting rules and the Grafana dashboard name are the ones a worker serves."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import REGISTRY

import streamer.kafka.metrics  # noqa: F401 - registers the worker's metrics
from streamer.config import REPO_ROOT

pytestmark = pytest.mark.unit

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
DOCS = REPO_ROOT / "docs" / "OPERATIONS.md"
RULES = REPO_ROOT / "deploy" / "prometheus" / "vitalstream-rules.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "vitalstream.json"


def _families() -> dict[str, str]:
    return {f.name: f.type for f in REGISTRY.collect() if f.name.startswith("vitals_")}


def _served() -> set[str]:
    return {name + suffix for name, kind in _families().items() for suffix in SUFFIXES[kind]} | set(_families())


def _named(text: str) -> set[str]:
    return set(re.findall(r"\bvitals_[a-z_]+[a-z]", text))


def _dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


@pytest.mark.parametrize("path", [DOCS, RULES, DASHBOARD], ids=lambda p: p.name)
def test_every_metric_named_is_served(path) -> None:
    unknown = _named(path.read_text()) - _served()
    assert not unknown, f"{path.name} names metrics no worker serves: {sorted(unknown)}"


def test_every_served_metric_is_documented_and_on_the_dashboard() -> None:
    docs = DOCS.read_text()
    on_board = _named(" ".join(_dashboard_exprs()))
    for name, kind in _families().items():
        assert f"`{name}_total`" in docs if kind == "counter" else f"`{name}`" in docs, name  # the metric table
        assert any(n == name or n.startswith(name + "_") for n in on_board), f"{name} is not on the dashboard"


def test_the_rules_cover_lag_dead_letters_and_lost_models() -> None:
    rules = RULES.read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    assert {"VitalsConsumerLagGrowing", "VitalsDeadLetterRateHigh", "VitalsModelUnavailable"} <= alerts
    assert all(f"`{a}`" in DOCS.read_text() for a in alerts), "every rule is explained in docs/OPERATIONS.md"
