"""Alert lifecycle scenarios (persistence, hysteresis, escalation, suppression) and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.alerts.policy import AlertPolicy, alert_id_for
from streamer.config import Settings
from streamer.contracts import Alert, AlertAck, AlertState, Condition, ModelRef, Priority, ScoreRecord
from streamer.records import FeatureWindow, TechnicalEvent

pytestmark = pytest.mark.unit

DEV = "dev-7"
SETTINGS = Settings(escalate_after_s=120, sqi_threshold=0.5, silence_timeout_s=30)


def numerics(start_s, end_s, usable=True, **features):
    return FeatureWindow(DEV, "numerics", int(start_s * 1000), int(end_s * 1000), None, usable, features)


def ppg(start_s, end_s, quality):
    usable = quality >= 0.5
    return FeatureWindow(DEV, "ppg", int(start_s * 1000), int(end_s * 1000), quality, usable,
                         {"pulse_rate_bpm": None, "n_beats": None})  # fmt: skip


def score(ts_s, name, value, threshold=0.5):
    return ScoreRecord(device_id=DEV, model=ModelRef(name=name, version="1.2"), ts_ms=int(ts_s * 1000),
                       score=value, threshold=threshold)  # fmt: skip


def feed_numerics(policy, values, step_s=10, start_s=0, key="spo2_pct", **other):
    """One 10 s numerics window per value; returns [(window index, alert)]."""
    out = []
    for i, v in enumerate(values):
        t0 = start_s + i * step_s
        out += [(i, a) for a in policy.on_window(numerics(t0, t0 + step_s, **{key: v, **other}), t0 * 1000 + 1)]
    return out


def test_desaturation_raises_after_the_persistence_delay_not_before():
    policy = AlertPolicy(DEV, SETTINGS, patient_id="p-1")
    alerts = feed_numerics(policy, [97, 97, 86, 85])
    # first low window [20, 30) s holds 10 s < 15 s: nothing; the second makes 20 s: raised
    assert [(i, a.condition, a.state) for i, a in alerts] == [(3, Condition.SPO2_LOW, AlertState.RAISED)]
    alert = alerts[0][1]
    assert alert.episode_start_ms == 20_000 and alert.transition_ts_ms == 40_000
    assert alert.alert_id == alert_id_for(DEV, "SPO2_LOW", 20_000)
    assert alert.priority is Priority.MEDIUM and alert.patient_id == "p-1"
    assert alert.evidence.values["spo2_pct"] == 85 and alert.evidence.window_start_ms == 30_000
    assert alert.latency.device_ts_ms == 40_000 and alert.latency.ingest_ts_ms == 30_001
    assert alert.latency.publish_ts_ms is None
    assert "SpO2" in alert.message and "90" in alert.message


def test_hysteresis_holds_then_resolves_and_reentry_is_a_new_episode():
    policy = AlertPolicy(DEV, SETTINGS)
    out = feed_numerics(policy, [85, 85, 91, 91, 91, 91, 91, 93, 93, 93, 86, 86])
    alerts = [a for _, a in out if a.condition is Condition.SPO2_LOW]  # SpO2 <= 91 also moves NEWS2
    states = [(a.state, a.transition_ts_ms) for a in alerts]
    # 91 sits between enter (< 90) and exit (>= 92): no resolution; 93 for 30 s resolves at 100 s
    assert states == [
        (AlertState.RAISED, 20_000),
        (AlertState.RESOLVED, 100_000),
        (AlertState.RAISED, 120_000),
    ]
    assert alerts[0].alert_id == alerts[1].alert_id != alerts[2].alert_id


def high_hr_low_policy():
    policy = AlertPolicy(DEV, SETTINGS)
    raised = [a for _, a in feed_numerics(policy, [35, 35], key="heart_rate_bpm")]
    assert [(a.condition, a.priority, a.state) for a in raised] == [
        (Condition.HR_LOW, Priority.HIGH, AlertState.RAISED)
    ]
    return policy, raised[0]


def test_unacknowledged_high_priority_escalates_once_in_event_time():
    policy, raised = high_hr_low_policy()  # raised at 20 s
    later = feed_numerics(policy, [35] * 14, start_s=20, key="heart_rate_bpm")
    escalated = [(i, a) for i, a in later if a.state is AlertState.ESCALATED]
    # 120 s after the raise at 20 s is the window ending at 140 s (index 11)
    assert [(i, a.transition_ts_ms) for i, a in escalated] == [(11, 140_000)]
    assert escalated[0][1].alert_id == raised.alert_id


def test_escalation_waits_for_event_time_not_wall_time():
    # only device time of later inputs (here technical events at 139 s and 140 s) moves escalation
    fresh, raised = high_hr_low_policy()
    out = fresh.on_event(TechnicalEvent(DEV, "MODEL_UNAVAILABLE", True, 20_000 + 119_000, signal="af"))
    assert [a.state for a in out if a.condition is Condition.HR_LOW] == []
    out = fresh.on_event(TechnicalEvent(DEV, "MODEL_UNAVAILABLE", False, 20_000 + 120_000, signal="af"))
    assert [a.state for a in out if a.condition is Condition.HR_LOW] == [AlertState.ESCALATED]


def test_acknowledgement_is_idempotent_and_stops_escalation():
    policy, raised = high_hr_low_policy()
    ack = AlertAck(alert_id=raised.alert_id, device_id=DEV, by="nurse-3", ts_ms=25_000)
    first = policy.on_ack(ack)
    assert [(a.alert_id, a.state) for a in first] == [(raised.alert_id, AlertState.ACKNOWLEDGED)]
    assert policy.on_ack(ack) == [] and policy.on_ack(ack.model_copy(update={"ts_ms": 99_000})) == []
    later = feed_numerics(policy, [35] * 20, start_s=20, key="heart_rate_bpm")
    assert [a for _, a in later if a.condition is Condition.HR_LOW] == []  # no escalation, still open
    resolved = feed_numerics(policy, [60] * 4, start_s=220, key="heart_rate_bpm")
    assert [(a.state, a.alert_id) for _, a in resolved] == [(AlertState.RESOLVED, raised.alert_id)]
    assert policy.on_ack(ack) == []  # acknowledging a resolved alert says nothing


def test_ack_for_another_device_or_unknown_id_is_ignored():
    policy, raised = high_hr_low_policy()
    assert policy.on_ack(AlertAck(alert_id=raised.alert_id, device_id="dev-other", ts_ms=1)) == []
    assert policy.on_ack(AlertAck(alert_id="0" * 32, device_id=DEV, ts_ms=1)) == []


def test_low_ppg_quality_suppresses_spo2_and_raises_low_signal_quality():
    policy = AlertPolicy(DEV, SETTINGS)
    out = []
    for i in range(6):  # 60 s of SpO2 80% while the PPG is unusable
        t0 = i * 10
        out += policy.on_window(ppg(t0, t0 + 10, quality=0.2))
        out += policy.on_window(numerics(t0, t0 + 10, spo2_pct=80))
    assert [(a.condition, a.state) for a in out] == [(Condition.LOW_SIGNAL_QUALITY, AlertState.RAISED)]
    assert out[0].evidence.values["low_signals"] == "ppg"
    out = []
    for i in range(6, 10):  # quality recovers, SpO2 still 80%: the delay counts from the recovery
        t0 = i * 10
        out += [(i, a) for a in policy.on_window(ppg(t0, t0 + 10, quality=0.9))]
        out += [(i, a) for a in policy.on_window(numerics(t0, t0 + 10, spo2_pct=80))]
    got = [(i, a.condition, a.state) for i, a in out]
    assert got == [  # the technical alert needs 30 s of good quality to clear; suppression ends at once
        (7, Condition.SPO2_LOW, AlertState.RAISED),
        (8, Condition.LOW_SIGNAL_QUALITY, AlertState.RESOLVED),
    ]
    assert out[0][1].evidence.signal_quality == 0.9


def test_low_quality_event_suppresses_the_signal_it_names():
    policy = AlertPolicy(DEV, SETTINGS)
    ev = TechnicalEvent(DEV, "LOW_SIGNAL_QUALITY", True, 0, detail="flat line", signal="ecg")
    assert policy.on_event(ev) == []  # suppression at once; the technical alert waits for 30 s of windows
    assert feed_numerics(policy, [35] * 5, key="heart_rate_bpm") == []  # HR suppressed, SpO2 would not be
    assert [a.condition for _, a in feed_numerics(policy, [80] * 3, start_s=50)] == [Condition.SPO2_LOW]


def test_unusable_numerics_window_counts_as_missing():
    policy = AlertPolicy(DEV, SETTINGS)
    out = feed_numerics(policy, [80, 80], usable=False)
    assert out == []


def test_news2_high_from_numerics_with_partial_parameters():
    policy = AlertPolicy(DEV, SETTINGS)
    vitals = dict(heart_rate_bpm=120, resp_rate_bpm=26, supplemental_o2=1.0)  # 2 + 3 + 2 = 7
    out = feed_numerics(policy, [97] * 6, **vitals)
    conditions = sorted({a.condition for _, a in out})
    assert Condition.NEWS2_HIGH in conditions and Condition.NEWS2_MEDIUM not in conditions
    high = next(a for _, a in out if a.condition is Condition.NEWS2_HIGH)
    assert high.priority is Priority.HIGH and high.evidence.values["news2_total"] == 7
    assert "temp_c" in high.evidence.values["news2_missing"]


def test_af_episode_after_three_consecutive_scores_carries_the_model():
    policy = AlertPolicy(DEV, SETTINGS)
    out = [a for i, v in enumerate([0.7, 0.8, 0.2, 0.6, 0.9, 0.95]) for a in policy.on_score(score(2 * i, "af", v))]
    assert [(a.condition, a.state, a.transition_ts_ms) for a in out] == [
        (Condition.AF_EPISODE, AlertState.RAISED, 10_000)
    ]
    assert out[0].model == ModelRef(name="af", version="1.2") and out[0].episode_start_ms == 6_000
    gone = [a for i, v in enumerate([0.3, 0.3, 0.3]) for a in policy.on_score(score(12 + 2 * i, "af", v))]
    assert [(a.state, a.model) for a in gone] == [(AlertState.RESOLVED, ModelRef(name="af", version="1.2"))]


def test_technical_events_pass_through():
    policy = AlertPolicy(DEV, SETTINGS)
    on = policy.on_event(TechnicalEvent(DEV, "DEVICE_SILENT", True, 5_000, detail="no data for 30 s"))
    again = policy.on_event(TechnicalEvent(DEV, "DEVICE_SILENT", True, 6_000, detail="no data for 30 s"))
    off = policy.on_event(TechnicalEvent(DEV, "DEVICE_SILENT", False, 9_000, detail="no data for 30 s"))
    assert [(a.state, a.priority) for a in on] == [(AlertState.RAISED, Priority.MEDIUM)] and again == []
    assert [a.state for a in off] == [AlertState.RESOLVED] and off[0].alert_id == on[0].alert_id
    assert policy.on_event(TechnicalEvent(DEV, "NOT_A_CONDITION", True, 10_000)) == []


def test_ecg_heart_rate_is_used_only_without_fresh_numerics():
    policy = AlertPolicy(DEV, SETTINGS)
    ecg = [FeatureWindow(DEV, "ecg", t * 1000, (t + 10) * 1000, 0.9, True, {"heart_rate_bpm": 150.0})
           for t in range(0, 60, 2)]  # fmt: skip
    policy.on_window(numerics(0, 10, heart_rate_bpm=80.0))
    out = [a for w in ecg[:10] for a in policy.on_window(w)]  # numerics fresh until 40 s: ECG outranked
    assert out == []
    out = [a for w in ecg[10:] for a in policy.on_window(w)]
    assert [a.condition for a in out] == [Condition.HR_HIGH]


# ----------------------------------------------------------------------------- properties
# Vitals are sticky (a "set" op changes one, "num" windows repeat the current ones) so that runs long
# enough to pass the persistence delays are common.
OP = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["spo2_pct", "heart_rate_bpm", "resp_rate_bpm"]),
              st.sampled_from([None, 6, 9, 16, 22, 30, 35, 42, 80, 88, 91, 95, 125, 135])),
    st.tuples(st.just("num"), st.sampled_from([5, 10, 60]), st.booleans()),
    st.tuples(st.just("num"), st.sampled_from([5, 10, 60]), st.booleans()),
    st.tuples(st.just("ppg"), st.sampled_from([2, 8]), st.sampled_from([0.1, 0.9])),
    st.tuples(st.just("score"), st.sampled_from([2, 30]), st.sampled_from(["af", "sepsis", "anomaly", "x"]),
              st.sampled_from([0.1, 0.45, 0.6, 0.9]), st.sampled_from([None, 0.5])),
    st.tuples(st.just("event"), st.sampled_from([1, 40]),
              st.sampled_from(["DEVICE_SILENT", "MODEL_UNAVAILABLE", "LOW_SIGNAL_QUALITY"]), st.booleans(),
              st.sampled_from([None, "ppg", "ecg"])),
    st.tuples(st.just("ack"), st.integers(0, 50)),
)  # fmt: skip
PROP_SETTINGS = Settings(escalate_after_s=60, sqi_threshold=0.5, silence_timeout_s=30)


def apply(policy, op, t_ms, ids, vitals):
    """Apply one op at event time ``t_ms``; acks go twice and the second must say nothing."""
    kind = op[0]
    if kind == "set":
        vitals[op[1]] = op[2]
        return []
    if kind == "ack":
        if not ids:
            return []
        ack = AlertAck(alert_id=ids[op[1] % len(ids)], device_id=DEV, ts_ms=t_ms)
        first = policy.on_ack(ack)
        assert policy.on_ack(ack) == []
        return first
    start = t_ms - op[1] * 1000
    if kind == "num":
        fw = numerics(start / 1000, t_ms / 1000, op[2], **vitals)
        return policy.on_window(fw, t_ms + 3)
    if kind == "ppg":
        return policy.on_window(ppg(start / 1000, t_ms / 1000, op[2]))
    if kind == "score":
        rec = ScoreRecord(device_id=DEV, model=ModelRef(name=op[2], version="0"), ts_ms=t_ms, score=op[3],
                          threshold=op[4], above_threshold=None if op[4] else op[3] > 0.5)  # fmt: skip
        return policy.on_score(rec)
    return policy.on_event(TechnicalEvent(DEV, op[2], op[3], t_ms, signal=op[4]))


def run(ops, split=None):
    policy, out, ids, t_ms, vitals = AlertPolicy(DEV, PROP_SETTINGS), [], [], 0, {}
    for i, op in enumerate(ops):
        if i == split:
            policy = AlertPolicy.from_state(json.loads(json.dumps(policy.to_state())), PROP_SETTINGS)
        if op[0] not in ("ack", "set"):
            t_ms += op[1] * 1000
        alerts = apply(policy, op, t_ms, ids, vitals)
        ids += [a.alert_id for a in alerts if a.alert_id not in ids]
        out += [a.model_dump(mode="json") for a in alerts]
    return out


def check_lifecycle(out):
    history: dict[str, list[dict]] = {}
    open_by_condition: dict[str, str] = {}
    for a in out:
        Alert.model_validate(a)
        states = history.setdefault(a["alert_id"], [])
        if not states:
            assert a["state"] == "RAISED", "first transition of an alert must be RAISED"
            assert a["condition"] not in open_by_condition, "two open episodes for one condition"
            open_by_condition[a["condition"]] = a["alert_id"]
        else:
            assert states[-1]["state"] != "RESOLVED", "transition after RESOLVED"
            assert a["state"] != "RAISED" and a["state"] != states[-1]["state"]
        if a["state"] == "ESCALATED":
            assert a["priority"] == "high" and states[-1]["state"] == "RAISED"
            assert a["transition_ts_ms"] - states[0]["transition_ts_ms"] >= 60_000
        if a["state"] == "ACKNOWLEDGED":
            assert "ACKNOWLEDGED" not in [s["state"] for s in states]
        if a["state"] == "RESOLVED":
            assert open_by_condition.pop(a["condition"]) == a["alert_id"]
        assert a["alert_id"] == alert_id_for(DEV, a["condition"], a["episode_start_ms"])
        states.append(a)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OP, max_size=60), st.data())
def test_lifecycle_invariants_determinism_and_state_round_trip(ops, data):
    out = run(ops)
    check_lifecycle(out)
    assert run(ops) == out  # same inputs, same alerts and ids
    split = data.draw(st.integers(0, len(ops)), label="split")
    assert run(ops, split=split) == out  # JSON state round trip at any point changes nothing


def test_property_ops_do_reach_every_state():
    """Guard against a vacuous property test: a fixed op sequence exercises all four states."""
    low = [("set", "spo2_pct", 80), ("set", "heart_rate_bpm", 35)]
    normal = [("set", "spo2_pct", 95), ("set", "heart_rate_bpm", 80)]
    ops = low + [("num", 10, True)] * 10 + [("ack", 0)] + normal + [("num", 10, True)] * 40
    states = {a["state"] for a in run(ops)}
    assert states == {"RAISED", "ESCALATED", "ACKNOWLEDGED", "RESOLVED"}


def test_episodes_opened_at_the_same_timestamp_still_get_new_ids():
    policy = AlertPolicy(DEV, SETTINGS)
    ids = []
    for active in (True, False, True, False, True):
        ids += [a.alert_id for a in policy.on_event(TechnicalEvent(DEV, "DEVICE_SILENT", active, 5_000))]
    raised = ids[0::2]
    assert len(ids) == 5 and len(set(raised)) == 3


def test_motion_windows_do_not_count_as_signal_quality():
    policy = AlertPolicy(DEV, SETTINGS)
    motion = [FeatureWindow(DEV, "motion", t * 1000, (t + 10) * 1000, None, False, {"activity_g": None})
              for t in range(0, 60, 10)]  # fmt: skip
    assert [a for w in motion for a in policy.on_window(w)] == []


def test_input_for_another_device_is_a_bug_and_fails_loudly():
    policy = AlertPolicy(DEV, SETTINGS)
    with pytest.raises(ValueError, match="dev-other"):
        policy.on_window(FeatureWindow("dev-other", "numerics", 0, 10_000, None, True, {"spo2_pct": 80.0}))


def test_af_from_ppg_yields_to_fresh_ecg_scores():
    """ECG and PPG rhythm both score AF; interleaved on one track they would flap, so ECG rules while fresh."""
    policy = AlertPolicy(DEV, SETTINGS)

    def src(ts_s, value, source):
        return score(ts_s, "af", value).model_copy(update={"source": source})

    out = []
    for i in range(6):  # ECG says sinus rhythm, PPG (a pulse deficit, say) says AF
        out += policy.on_score(src(2 * i, 0.1, "ecg"))
        out += policy.on_score(src(2 * i, 0.9, "ppg"))
    assert out == []
    later = [a for i in range(6, 10) for a in policy.on_score(src(2 * i, 0.9, "ppg"))]
    assert later == []  # ECG last scored at 10 s: fresh for silence_timeout_s (30 s), PPG still yields
    stale = [a for i in range(4) for a in policy.on_score(src(50 + 2 * i, 0.9, "ppg"))]
    assert [(a.condition, a.state) for a in stale] == [(Condition.AF_EPISODE, AlertState.RAISED)]
