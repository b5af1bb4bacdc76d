"""The worker's metric hooks on real pipeline objects (the HTTP side is tested on the broker, test_ops_broker)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from streamer.config import Settings
from streamer.inference.stage import ADAPTERS, InferenceStage
from streamer.kafka import metrics
from streamer.kafka.pipeline_stage import PipelineStage
from streamer.pipeline import Pipeline

pytestmark = pytest.mark.unit


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_models_loaded_only_when_every_checkpoint_loaded(tmp_path) -> None:
    settings = Settings()
    metrics.watch_pipeline(lambda: 0, None)
    assert not metrics.models_loaded()  # no inference stage at all

    broken = InferenceStage(settings, weights_dir=tmp_path)  # an empty folder: no checkpoint loads
    metrics.watch_pipeline(lambda: 0, broken)
    assert not metrics.models_loaded()
    assert {name: _value("vitals_model_loaded", model=name) for name in ADAPTERS} == dict.fromkeys(ADAPTERS, 0.0)

    shipped = InferenceStage(settings)
    metrics.watch_pipeline(lambda: 0, shipped)
    assert metrics.models_loaded() and _value("vitals_model_loaded", model="af") == 1.0
    assert all(m.batcher.observer is metrics.observe_inference for m in shipped.models.values())


def test_device_and_state_gauges_follow_the_pipeline() -> None:
    metrics.state_forgotten()  # the gauges are process-wide: sizes left by other tests' stages do not count
    stage = PipelineStage(Settings(), None, "acks")
    stage.pipelines = {0: Pipeline(Settings(), None), 1: Pipeline(Settings(), None)}  # two owned partitions
    metrics.watch_pipeline(stage.device_count, None)
    stage.pipelines[0].runtime("dev-a", None)
    stage.pipelines[1].runtime("dev-b", None)
    assert _value("vitals_devices") == 2.0
    metrics.state_written("dev-a", 100)
    metrics.state_written("dev-b", 50)
    metrics.state_written("dev-a", 120)  # the latest size of a device counts, not the sum of its writes
    assert _value("vitals_state_bytes") == 170.0
    metrics.state_forgotten()
    assert _value("vitals_state_bytes") == 0.0


def test_batches_and_dead_letters_are_counted_by_label() -> None:
    before = _value("vitals_dead_letters_total", reason="STALE_SEQ") or 0.0
    metrics.dead_lettered("STALE_SEQ")
    metrics.dead_lettered("STALE_SEQ")
    assert _value("vitals_dead_letters_total", reason="STALE_SEQ") == before + 2
    count = _value("vitals_batch_records_count", agent="unit") or 0.0
    metrics.batch_done("unit", 7, started_s=0.0)
    assert _value("vitals_batch_records_count", agent="unit") == count + 1
    assert (_value("vitals_messages_in_total", agent="unit") or 0) >= 7
