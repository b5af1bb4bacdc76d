"""Condition rules: thresholds with hysteresis, persistence in event time and in counts, priorities."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.alerts.conditions import (
    LIMIT_RULES,
    MODEL_RULES,
    NEWS2_RULES,
    Between,
    Rule,
    Threshold,
    Track,
    news2_values,
    priority_of,
    step,
)
from streamer.contracts import PRIORITY_RANK, Condition, Priority

pytestmark = pytest.mark.unit

RULE = Rule(Condition.SPO2_LOW, Priority.MEDIUM, "physiological", "spo2_pct", Threshold("<", 90),
            Threshold(">=", 92), enter_delay_s=15, exit_delay_s=30)  # fmt: skip
GAP_MS = 30_000


def feed(rule, values, dt_ms=5_000, track=None):
    """Feed 1 value per ``dt_ms`` window; return (track, [(index, change)])."""
    track = track or Track()
    changes = []
    for i, v in enumerate(values):
        change = step(rule, track, v, i * dt_ms, (i + 1) * dt_ms, GAP_MS)
        if change:
            changes.append((i, change))
    return track, changes


def test_enter_needs_the_persistence_delay():
    # 5 s windows: 15 s below 90 means the third low window, not the second
    _, changes = feed(RULE, [95, 89, 89, 89, 89])
    assert changes == [(3, "enter")]


def test_short_dip_below_limit_does_not_enter():
    _, changes = feed(RULE, [95, 89, 89, 95, 89, 89, 95])
    assert changes == []


def test_hysteresis_band_keeps_alert_active_and_restarts_exit_run():
    # 91 is above the enter limit but below the exit limit: stays active
    track, changes = feed(RULE, [89, 89, 89, 91, 91, 91, 91, 91, 91, 91, 91])
    assert changes == [(2, "enter")] and track.active
    # exit needs 30 s >= 92; a 91 in the middle restarts the run
    _, changes = feed(RULE, [93, 93, 93, 91, 93, 93, 93, 93, 93, 93], track=track)
    assert changes == [(9, "exit")]


def test_missing_value_restarts_the_run():
    _, changes = feed(RULE, [89, 89, None, 89, 89, 89])
    assert changes == [(5, "enter")]


def test_gap_in_data_restarts_the_run():
    track = Track()
    assert step(RULE, track, 89, 0, 10_000, GAP_MS) is None
    # next window starts 60 s later: the time between is not evidence of persistence
    assert step(RULE, track, 89, 70_000, 80_000, GAP_MS) is None
    assert step(RULE, track, 89, 80_000, 85_000, GAP_MS) == "enter"
    assert track.changed_ms == 70_000


def test_onset_is_the_start_of_the_run_that_entered():
    track, _ = feed(RULE, [95, 95, 89, 89, 89, 89])
    assert track.active and track.changed_ms == 10_000


def test_count_based_model_rule():
    af = MODEL_RULES["af"]
    _, changes = feed(af, [1.2, 1.1, 0.5, 1.0, 1.3, 1.5, 0.9, 0.7, 0.1, 0.0, 0.0], dt_ms=0)
    # 3 consecutive >= 1 to enter (indices 3-5); 0.9 is in the hysteresis band; 3 below 0.8 to exit
    assert changes == [(5, "enter"), (9, "exit")]


@given(st.lists(st.one_of(st.none(), st.integers(80, 100)), max_size=60))
def test_enter_and_exit_alternate_and_respect_thresholds(values):
    track = Track()
    changes = []
    for i, v in enumerate(values):
        change = step(RULE, track, v, i * 5_000, (i + 1) * 5_000, GAP_MS)
        if change:
            changes.append(change)
            # the value that completed the run must satisfy that phase's predicate
            assert (RULE.enter if change == "enter" else RULE.exit)(v)
    assert changes == ["enter", "exit"] * (len(changes) // 2) + ["enter"] * (len(changes) % 2)


def test_every_limit_rule_has_real_hysteresis():
    for rule in (*LIMIT_RULES, *NEWS2_RULES):
        assert isinstance(rule.exit, Threshold)
        limit = rule.exit.limit
        # the exit threshold itself must not satisfy the enter predicate (else no gap)
        assert not rule.enter(limit), rule.condition


def test_predicates_print_for_evidence():
    assert str(Threshold("<", 90)) == "< 90" and str(Between(5, 6)) == "in [5, 6]"
    assert Between(5, 6)(5) and Between(5, 6)(6) and not Between(5, 6)(7)


@pytest.mark.parametrize(
    ("condition", "priority"),
    [
        (Condition.NEWS2_HIGH, Priority.HIGH),
        (Condition.HR_LOW, Priority.HIGH),
        (Condition.SPO2_LOW, Priority.MEDIUM),
        (Condition.NEWS2_MEDIUM, Priority.MEDIUM),
        (Condition.AF_EPISODE, Priority.MEDIUM),
        (Condition.TEMP_HIGH, Priority.LOW),
        (Condition.LOW_SIGNAL_QUALITY, Priority.LOW),
        (Condition.DEVICE_SILENT, Priority.MEDIUM),
        (Condition.MODEL_UNAVAILABLE, Priority.MEDIUM),
    ],
)
def test_iec_priority_mapping(condition, priority):
    assert priority_of(condition) is priority


def test_a_lost_model_alarms_at_least_as_urgently_as_what_it_monitors():
    # IEC 60601-1-8 technical alarm: the monitoring function behind a physiological alert is gone
    lost = PRIORITY_RANK[priority_of(Condition.MODEL_UNAVAILABLE)]
    assert lost >= PRIORITY_RANK[Priority.MEDIUM]
    assert all(lost >= PRIORITY_RANK[rule.priority] for rule in MODEL_RULES.values())


def test_every_condition_has_a_priority():
    assert {priority_of(c) for c in Condition} <= set(Priority)
    assert all(priority_of(c) is not Priority.INFO for c in Condition)


def test_news2_trigger_counts_a_single_3_as_medium():
    single = news2_values({}, {"heart_rate_bpm": 135, "spo2_pct": 97, "resp_rate_bpm": 16})
    assert single["news2_total"] == 3 and single["news2_trigger"] == 5
    normal = news2_values({}, {"heart_rate_bpm": 70, "spo2_pct": 97, "resp_rate_bpm": 16})
    assert normal["news2_total"] == 0 and normal["news2_trigger"] == 0
    assert "supplemental_o2" in normal["news2_missing"]
    assert news2_values({}, {})["news2_total"] is None


def test_news2_context_features_from_numerics_window():
    features = {"supplemental_o2": 1.0, "spo2_scale": 2.0, "consciousness_code": 1.0, "sbp_mmhg": 95.0}
    v = news2_values(features, {"spo2_pct": 97, "heart_rate_bpm": 70})
    # scale 2 on oxygen at 97 -> 3; oxygen -> 2; C -> 3; SBP 95 -> 2; HR 70 -> 0
    assert v["news2_total"] == 10 and v["news2_spo2_pct"] == 3 and v["news2_consciousness"] == 3
