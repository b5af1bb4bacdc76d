"""NEWS2 against the Royal College of Physicians chart (RCP, NEWS2 report 2017, chart 1 and chart 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.alerts.news2 import PARAMETERS, news2_score

pytestmark = pytest.mark.unit

# Both sides of every band edge, written from RCP NEWS2 chart 1 (2017), not from the code:
#   Respiration rate: <=8 ->3, 9-11 ->1, 12-20 ->0, 21-24 ->2, >=25 ->3
#   SpO2 scale 1: <=91 ->3, 92-93 ->2, 94-95 ->1, >=96 ->0
#   Systolic BP: <=90 ->3, 91-100 ->2, 101-110 ->1, 111-219 ->0, >=220 ->3
#   Pulse: <=40 ->3, 41-50 ->1, 51-90 ->0, 91-110 ->1, 111-130 ->2, >=131 ->3
#   Temperature: <=35.0 ->3, 35.1-36.0 ->1, 36.1-38.0 ->0, 38.1-39.0 ->1, >=39.1 ->2
_CHART = {
    "resp_rate_bpm": [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)],
    "spo2_pct": [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0)],
    "sbp_mmhg": [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)],
    "heart_rate_bpm": [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2),
                       (131, 3)],
    "temp_c": [(35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2)],
}  # fmt: skip
EDGES = [(name, value, score) for name, rows in _CHART.items() for value, score in rows]


@pytest.mark.parametrize(("name", "value", "expected"), EDGES)
def test_every_band_edge_of_every_parameter(name, value, expected):
    result = news2_score(**{name: value})
    assert result.subscores == {name: expected}
    assert result.total == expected


# Scale 2 (hypercapnic respiratory failure), chart 1: <=83 ->3, 84-85 ->2, 86-87 ->1, 88-92 ->0,
# >=93 on air ->0, 93-94 on oxygen ->1, 95-96 on oxygen ->2, >=97 on oxygen ->3.
SCALE2 = [
    (83, None, 3), (84, None, 2), (85, None, 2), (86, None, 1), (87, None, 1), (88, None, 0), (92, None, 0),
    (83, True, 3), (92, True, 0), (88, False, 0),
    (93, False, 0), (97, False, 0), (100, False, 0),
    (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2), (97, True, 3), (100, True, 3),
]  # fmt: skip


@pytest.mark.parametrize(("spo2", "on_o2", "expected"), SCALE2)
def test_spo2_scale_2_with_and_without_oxygen(spo2, on_o2, expected):
    result = news2_score(spo2_pct=spo2, spo2_scale=2, supplemental_o2=on_o2)
    assert result.subscores["spo2_pct"] == expected
    if on_o2 is not None:
        # the air/oxygen parameter scores on its own: oxygen 2, air 0
        assert result.subscores["supplemental_o2"] == (2 if on_o2 else 0)


def test_scale_2_at_or_above_93_without_oxygen_flag_is_not_scored_as_zero():
    result = news2_score(spo2_pct=95, spo2_scale=2)
    assert "spo2_pct" not in result.subscores
    assert "spo2_pct" in result.missing and "supplemental_o2" in result.missing


def test_scale_1_spo2_ignores_oxygen_but_oxygen_scores_2():
    on_air = news2_score(spo2_pct=97, supplemental_o2=False)
    on_o2 = news2_score(spo2_pct=97, supplemental_o2=True)
    assert on_air.subscores == {"spo2_pct": 0, "supplemental_o2": 0}
    assert on_o2.subscores == {"spo2_pct": 0, "supplemental_o2": 2}


@pytest.mark.parametrize(("level", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3), ("c", 3)])
def test_acvpu_new_confusion_scores_3(level, expected):
    assert news2_score(consciousness=level).subscores == {"consciousness": expected}


def test_unknown_consciousness_level_is_rejected():
    with pytest.raises(ValueError, match="ACVPU"):
        news2_score(consciousness="X")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("heart_rate_bpm", 90.4, 0),
        ("heart_rate_bpm", 90.5, 1),
        ("heart_rate_bpm", 130.49, 2),
        ("heart_rate_bpm", 130.5, 3),
        ("temp_c", 38.04, 0),
        ("temp_c", 38.05, 1),
        ("temp_c", 35.05, 1),
        ("temp_c", 35.04, 3),
        ("spo2_pct", 91.5, 2),
        ("resp_rate_bpm", 20.5, 2),
        ("sbp_mmhg", 90.49, 3),
    ],
)
def test_non_integer_values_round_half_up_to_chart_resolution(name, value, expected):
    assert news2_score(**{name: value}).subscores[name] == expected


FULL_NORMAL = dict(
    resp_rate_bpm=16, spo2_pct=97, supplemental_o2=False, sbp_mmhg=120, heart_rate_bpm=70, consciousness="A",
    temp_c=37.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "total", "band", "single_3"),
    [
        ({}, 0, "low", False),
        ({"heart_rate_bpm": 95, "temp_c": 38.5}, 2, "low", False),
        ({"resp_rate_bpm": 22, "heart_rate_bpm": 95, "temp_c": 38.5}, 4, "low", False),
        ({"consciousness": "C"}, 3, "low-medium", True),  # a single red score
        ({"resp_rate_bpm": 22, "heart_rate_bpm": 115, "temp_c": 38.5}, 5, "medium", False),
        ({"resp_rate_bpm": 25, "heart_rate_bpm": 115}, 5, "medium", True),  # 5 with a 3 is medium
        ({"resp_rate_bpm": 22, "heart_rate_bpm": 115, "supplemental_o2": True}, 6, "medium", False),
        ({"resp_rate_bpm": 25, "heart_rate_bpm": 115, "temp_c": 39.5}, 7, "high", True),
        ({"resp_rate_bpm": 30, "spo2_pct": 88, "sbp_mmhg": 85, "heart_rate_bpm": 140, "consciousness": "U",
          "temp_c": 34.0, "supplemental_o2": True}, 20, "high", True),  # the maximum
    ],
)  # fmt: skip
def test_aggregate_and_band_rules(changes, total, band, single_3):
    result = news2_score(**{**FULL_NORMAL, **changes})
    assert (result.total, result.band, result.any_single_3, result.missing) == (total, band, single_3, ())


def test_missing_parameters_are_listed_and_absent_from_subscores():
    result = news2_score(heart_rate_bpm=135, spo2_pct=97)
    assert result.total == 3 and result.band == "low-medium"
    assert set(result.subscores) == {"heart_rate_bpm", "spo2_pct"}
    assert set(result.missing) == set(PARAMETERS) - {"heart_rate_bpm", "spo2_pct"}


def test_nothing_given_scores_nothing():
    result = news2_score()
    assert result.subscores == {} and result.total == 0 and set(result.missing) == set(PARAMETERS)


def test_invalid_scale_is_rejected():
    with pytest.raises(ValueError, match="spo2_scale"):
        news2_score(spo2_pct=95, spo2_scale=3)


@given(
    st.floats(0, 60), st.floats(50, 100), st.integers(1, 2), st.booleans(), st.floats(40, 260),
    st.floats(20, 220), st.sampled_from("ACVPU"), st.floats(30, 43),
)  # fmt: skip
def test_total_is_sum_of_subscores_and_band_is_consistent(rr, spo2, scale, o2, sbp, hr, avpu, temp):
    r = news2_score(resp_rate_bpm=rr, spo2_pct=spo2, spo2_scale=scale, supplemental_o2=o2, sbp_mmhg=sbp,
                    heart_rate_bpm=hr, consciousness=avpu, temp_c=temp)  # fmt: skip
    assert r.missing == () and r.total == sum(r.subscores.values()) <= 20
    assert all(0 <= s <= 3 for s in r.subscores.values())
    assert r.any_single_3 == (3 in r.subscores.values())
    assert (r.band == "high") == (r.total >= 7)
    assert (r.band == "medium") == (5 <= r.total <= 6)
    assert (r.band == "low-medium") == (r.total <= 4 and r.any_single_3)
