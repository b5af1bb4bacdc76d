"""Real-data figures of the streaming path, asserted at what it reliably reaches (`vitalstream eval signals`).

Data: MIT-BIH (Moody & Mark 2001), BIDMC (Pimentel et al. 2017), PhysioNet (Goldberger et al. 2000), HeartPy
examples (van Gent et al. 2019). These are the shared development records (11 MIT-BIH, 30 BIDMC); the detector
and quality thresholds were tuned on them, so these are development figures, not held-out ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamer.config import recordings_dir
from streamer.evaluation.signals import evaluate

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    data = recordings_dir()
    return evaluate(data / "mitdb", data / "bidmc", data / "heartpy_examples")


def test_every_record_was_evaluated(figures) -> None:
    agg = figures["aggregate"]
    assert (agg["n_mitdb_records"], agg["n_bidmc_records"], agg["n_heartpy_files"]) == (11, 30, 3)


def test_qrs_detection_on_mitdb(figures) -> None:
    agg = figures["aggregate"]  # measured 99.72 / 99.77 (first 10 s excluded, 150 ms match window)
    assert agg["qrs_sensitivity_pct"] >= 99.6
    assert agg["qrs_ppv_pct"] >= 99.6
    per_record = {r["record"]: r for r in figures["records"] if r["dataset"] == "mitdb"}
    assert min(r["sensitivity_pct"] for r in per_record.values()) >= 98.5  # worst: 201 (aberrant APCs)
    assert per_record["105"]["ppv_pct"] >= 98.0  # the noisy record


def test_heart_rate_of_ecg_windows_on_mitdb(figures) -> None:
    agg = figures["aggregate"]  # measured 1.19 bpm over 93.5% of windows (vs mean reference RR)
    assert agg["ecg_hr_mae_bpm"] <= 1.5
    assert agg["ecg_hr_coverage_pct"] >= 90.0


def test_pulse_rate_from_ppg_on_bidmc(figures) -> None:
    agg = figures["aggregate"]  # measured 1.66 bpm over 99.0% of windows
    assert agg["ppg_hr_mae_bpm"] <= 2.0
    assert agg["ppg_hr_coverage_pct"] >= 95.0


def test_respiratory_rate_on_bidmc(figures) -> None:
    agg = figures["aggregate"]
    assert agg["resp_rate_mae_bpm_impedance"] <= 1.0  # measured 0.60 over 99% of windows
    assert agg["resp_rate_coverage_pct_impedance"] >= 95.0
    # Issue 15: quality-weighted fusion instead of refusing on disagreement (was 2.75 over 38% of windows).
    assert agg["resp_rate_mae_bpm_ppg"] <= 3.0
    assert agg["resp_rate_coverage_pct_ppg"] >= 90.0


def test_heartpy_examples_give_plausible_rates(figures) -> None:
    rows = [r for r in figures["records"] if r["dataset"] == "heartpy"]
    assert all(r["plausible"] and r["beats"] >= 20 for r in rows)
    assert all(r["good_windows"] >= 0.7 * r["windows"] for r in rows)
