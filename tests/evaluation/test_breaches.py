"""Sustained breaches: found in 1 Hz numerics, matched to alert episodes, and counted in ``eval alarms``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamer.cli import main as cli
from streamer.evaluation.alarm_burden import evaluate
from streamer.evaluation.breaches import Breach, Episode, breach_latency_s, summarise, sustained_breaches

pytestmark = pytest.mark.unit


def numerics(hr, spo2=None):
    n = len(hr)
    return {
        "Time [s]": np.arange(n, dtype=float),
        "HR": np.asarray(hr, dtype=float),
        "PULSE": np.array(hr, dtype=float),  # a copy: tests change it alone
        "RESP": np.full(n, 16.0),
        "SpO2": np.asarray(spo2 if spo2 is not None else np.full(n, 97.0), dtype=float),
    }


def test_only_runs_of_two_minutes_or_more_are_sustained_breaches():
    hr = np.full(600, 80.0)
    hr[100:219] = 140.0  # 119 s: too short
    hr[300:420] = 140.0  # exactly 120 s
    found = sustained_breaches(numerics(hr))
    assert found == [Breach("HR_HIGH", 300.0, 419.0)]


def test_a_dropout_holds_the_breach_and_limits_are_the_policy_enter_limits():
    spo2 = np.full(400, 97.0)
    spo2[50:200] = 88.0
    spo2[120:130] = np.nan  # held at 88 through the dropout
    hr = np.full(400, 80.0)
    hr[250:400] = 40.0  # HR_LOW enters at <= 40
    found = sustained_breaches(numerics(hr, spo2))
    assert found == [Breach("SPO2_LOW", 50.0, 199.0), Breach("HR_LOW", 250.0, 399.0)]
    spo2[50:200] = 90.0  # not < 90: no breach
    assert [b.condition for b in sustained_breaches(numerics(hr, spo2))] == ["HR_LOW"]


def test_latency_is_raise_time_minus_breach_start_and_missed_is_none():
    breach = Breach("HR_HIGH", 100.0, 300.0)
    assert breach_latency_s(breach, [Episode("HR_HIGH", 160.0, None)], grace_s=60) == 60.0
    assert breach_latency_s(breach, [Episode("HR_HIGH", 50.0, 400.0)], grace_s=60) == 0.0  # already open
    assert breach_latency_s(breach, [Episode("HR_HIGH", 50.0, 90.0)], grace_s=60) is None  # closed before
    assert breach_latency_s(breach, [Episode("HR_HIGH", 361.0, None)], grace_s=60) is None  # too late
    assert breach_latency_s(breach, [Episode("HR_LOW", 160.0, None)], grace_s=60) is None  # other condition


def test_summary_counts_alerted_breaches_and_latencies():
    rows = [{"alert_latency_s": v} for v in (30.0, None, 90.0, 0.0)]
    s = summarise(rows)
    assert (s["n_breaches"], s["n_alerted"], s["alerted_pct"]) == (4, 3, 75.0)
    assert (s["median_latency_s"], s["max_latency_s"]) == (30.0, 90.0)
    assert summarise([])["alerted_pct"] is None


def _write(folder, name, num):
    header = ",".join(num)
    rows = np.column_stack(list(num.values()))
    np.savetxt(folder / f"{name}_Numerics.csv", rows, delimiter=",", header=header, comments="", fmt="%.1f")


def test_eval_alarms_reports_an_alerted_breach_and_its_latency(tmp_path):
    hr = np.full(600, 80.0)
    hr[120:480] = 145.0  # six minutes of tachycardia: the policy must raise HR_HIGH
    _write(tmp_path, "bidmc_90", numerics(hr))
    result = evaluate(tmp_path, window_s=60)
    s = result["sustained_breaches_by_condition"]["HR_HIGH"]
    assert (s["n_breaches"], s["n_alerted"]) == (1, 1)
    # The first window wholly in the breach is 120-180 s and the enter delay is 30 s: raised at its end.
    assert s["median_latency_s"] == 60.0
    [row] = result["records"][0]["sustained_breaches"]
    assert row["condition"] == "HR_HIGH" and row["duration_s"] == 360.0


def test_eval_alarms_reports_a_desaturation_that_the_quality_gate_hid(tmp_path):
    hr, spo2 = np.full(600, 80.0), np.full(600, 97.0)
    spo2[120:420] = 85.0  # five minutes below 90%
    num = numerics(hr, spo2)
    num["PULSE"][100:440] = 120.0  # the oximeter's pulse disagrees with the ECG: its SpO2 is not trusted
    _write(tmp_path, "bidmc_91", num)
    result = evaluate(tmp_path, window_s=60)
    s = result["sustained_breaches"]
    assert (s["n_breaches"], s["n_alerted"], s["alerted_pct"]) == (1, 0, 0.0)
    assert result["records"][0]["sustained_breaches"][0]["alert_latency_s"] is None
    num["PULSE"][:] = 80.0  # the same desaturation with an agreeing pulse is alerted
    _write(tmp_path, "bidmc_91", num)
    assert evaluate(tmp_path, window_s=60)["sustained_breaches"]["n_alerted"] == 1


def test_eval_alarms_cli_takes_the_shortest_breach_and_reports_it(tmp_path, capsys):
    hr = np.full(600, 80.0)
    hr[120:210] = 145.0  # 90 s: sustained at --breach-min-s 60, not at the default 120
    _write(tmp_path, "bidmc_92", numerics(hr))
    for min_s, expected in ((120, 0), (60, 1)):
        assert cli.main(["eval", "alarms", "--bidmc", str(tmp_path), "--json", "--breach-min-s", str(min_s)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["breach_min_s"] == min_s and result["sustained_breaches"]["n_breaches"] == expected
