"""The report: PNG sized by its plan, device-time axis, non-overlapping alert lanes, 25 mm/s onset strips, plain
legend names with the models in a caption, and a self-contained interactive HTML page next to the PNG."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.config import recordings_dir
from streamer.contracts import Alert, Evidence, FeatureRecord, LatencyStamps, ModelRef, ScoreRecord
from streamer.evaluation.report import DPI, FIG_WIDTH_PX, device_messages, episodes, plan_report, render_report
from streamer.evaluation.report_data import Episode, assign_lanes, model_caption, panels
from streamer.evaluation.report_strips import BEFORE_S, MM_PER_INCH, strip_width_px
from streamer.sessions.importers import BASE_TS_MS, write_session

pytestmark = pytest.mark.unit

DATA = recordings_dir()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VERSION = "1-70fb996d"


@pytest.fixture(scope="module")
def bidmc_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BIDMC record 01 (ECG, PPG, resp waveforms; HR, SpO2, resp numerics) as a session."""
    out = tmp_path_factory.mktemp("report") / "bidmc01.jsonl.gz"
    write_session("bidmc", DATA / "bidmc" / "bidmc_01_Signals.csv.gz", out, topic="t")
    return out


def _alert(alert_id: str, state: str, priority: str, start_s: int, at_s: int, device: str = "bidmc-01") -> dict:
    return Alert(
        alert_id=alert_id, device_id=device, condition="SPO2_LOW", priority=priority, state=state,
        episode_start_ms=BASE_TS_MS + start_s * 1000, transition_ts_ms=BASE_TS_MS + at_s * 1000,
        message=f"SpO2 low ({state})", evidence=Evidence(rule="spo2<90", window_start_ms=0, window_end_ms=1),
        latency=LatencyStamps(device_ts_ms=BASE_TS_MS + at_s * 1000),
    ).model_dump(mode="json")  # fmt: skip


def _analysis() -> dict[str, Any]:
    """An analysis of the shape `vitalstream analyze --json` prints (values made up for the picture)."""
    features = [
        FeatureRecord(device_id="bidmc-01", signal="ecg", window_start_ms=BASE_TS_MS + t * 1000,
                      window_end_ms=BASE_TS_MS + (t + 10) * 1000, signal_quality=0.9, usable=True,
                      features={"heart_rate_bpm": 90.0 + t % 7}, feature_version="t").model_dump(mode="json")
        for t in range(0, 470, 2)
    ]  # fmt: skip
    scores = [
        ScoreRecord(device_id="bidmc-01", model=ModelRef(name="anomaly", version=VERSION),
                    ts_ms=BASE_TS_MS + t * 1000, score=t / 480, threshold=0.5,
                    above_threshold=t / 480 > 0.5).model_dump(mode="json")
        for t in range(0, 480, 60)
    ]  # fmt: skip
    alerts = [
        _alert("alert-aaa", "RAISED", "medium", 100, 100),
        _alert("alert-aaa", "ESCALATED", "high", 100, 220),
        _alert("alert-aaa", "RESOLVED", "high", 100, 300),
        _alert("alert-bbb", "RAISED", "low", 400, 400),
        _alert("alert-other-device", "RAISED", "high", 10, 10, device="bidmc-02"),
    ]
    return {"features": features, "scores": scores, "alerts": alerts, "counts": {}}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _plan(session: Path, analysis: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    device_id, msgs = device_messages(session)
    rows = {
        k: [r for r in (analysis or {}).get(k, []) if r["device_id"] == device_id]
        for k in ("features", "scores", "alerts")
    }
    return plan_report(msgs, rows), msgs, rows


def test_png_without_analysis_has_signal_panels_only(bidmc_session: Path, tmp_path: Path) -> None:
    out = render_report(bidmc_session, tmp_path / "r.png")
    plan, _, _ = _plan(bidmc_session)
    # 3 waveforms (ecg, ppg, resp) and 3 numerics groups (HR, SpO2, resp rate); no alert, so no lane or strip.
    assert [p if isinstance(p, str) else p.key for p in plan.overview][:3] == ["wave:ecg", "wave:ppg", "wave:resp"]
    assert len(plan.overview) == 6 and plan.strips == [] and plan.layout.strips == []
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, plan.layout.height_px)


def test_png_with_analysis_adds_panels_lanes_and_a_strip_per_onset(bidmc_session: Path, tmp_path: Path) -> None:
    out = render_report(bidmc_session, tmp_path / "r.png", _analysis())
    plan, _, _ = _plan(bidmc_session, _analysis())
    assert len(plan.overview) == 9  # + rates, signal quality, scores
    assert [(s.episode.alert_id, s.signals) for s in plan.strips] == [
        ("alert-aaa", ("ecg", "ppg")),
        ("alert-bbb", ("ecg", "ppg")),
    ]
    assert plan.strips[0].t0_ms == BASE_TS_MS + 100_000 - BEFORE_S * 1000  # the onset in the middle
    assert plan.strips[0].note == "SpO2 low (RAISED)"
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, plan.layout.height_px)
    assert plan.layout.height_px > _plan(bidmc_session)[0].layout.height_px + 2 * 250


def test_strips_are_drawn_at_25_mm_per_second() -> None:
    assert strip_width_px(DPI) / DPI * MM_PER_INCH / 10 == pytest.approx(25.0, abs=0.05)


def test_legend_names_are_plain_and_models_go_to_the_caption(bidmc_session: Path) -> None:
    _, msgs, rows = _plan(bidmc_session, _analysis())
    labels = [line.label for p in panels(msgs, rows) for line in p.lines]
    assert "heart rate from ECG" in labels and "anomaly score" in labels
    assert not [label for label in labels if VERSION in label or "_" in label]
    assert model_caption(rows) == f"Models: anomaly {VERSION}"


def test_overlapping_episodes_get_their_own_lanes() -> None:
    eps = [Episode("a", "X", "high", 0, 100), Episode("b", "Y", "low", 50, 150), Episode("c", "Z", "low", 120, 130)]
    assert assign_lanes(eps, 200) == [0, 1, 0]
    assert assign_lanes(eps, 200, min_width_ms=200) == [0, 1, 2]  # labels wider than the bars push them apart


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 300)), max_size=30))
def test_lanes_never_overlap_and_are_as_few_as_the_deepest_overlap(spans: list[tuple[int, int]]) -> None:
    eps = [Episode(str(i), "X", "low", s, s + d) for i, (s, d) in enumerate(sorted(spans))]
    lanes = assign_lanes(eps, 2000)
    for i, a in enumerate(eps):
        for j, b in enumerate(eps[:i]):
            if lanes[i] == lanes[j]:
                assert b.end_ms is not None and b.end_ms < a.start_ms
    depth = max((sum(e.start_ms <= t <= (e.end_ms or 0) for e in eps) for t in range(0, 1301)), default=0)
    assert max(lanes, default=-1) + 1 == depth


def test_html_is_interactive_self_contained_and_lists_the_device_alerts(bidmc_session: Path, tmp_path: Path) -> None:
    page = render_report(bidmc_session, tmp_path / "r.html", _analysis(), device_id="bidmc-01").read_text()
    for alert_id in ("alert-aaa", "alert-bbb"):
        assert alert_id in page
    assert "alert-other-device" not in page  # another device's alerts stay out
    assert page.count("<tr><td>") == 4
    assert "Plotly.newPlot" in page and "<script src=" not in page  # plotly.js inline: works offline
    embedded = re.search(r"id='report-png' alt='report' src='data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert embedded is not None
    beside = (tmp_path / "r.png").read_bytes()
    assert base64.b64decode(embedded.group(1)) == beside
    assert _png_size(beside) == (FIG_WIDTH_PX, _plan(bidmc_session, _analysis())[0].layout.height_px)


def test_long_record_is_decimated_and_still_drawn(tmp_path: Path) -> None:
    session = tmp_path / "mitdb100.jsonl.gz"
    write_session("wfdb", DATA / "mitdb" / "100", session, topic="t")
    out = render_report(session, tmp_path / "m.png")
    plan, _, _ = _plan(session)
    assert len(plan.overview) == 1  # one ECG panel, 650,000 samples
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, plan.layout.height_px)


def test_episodes_group_transitions_and_keep_the_highest_priority() -> None:
    eps = episodes(_analysis()["alerts"][:4])
    assert [(e.alert_id, e.priority) for e in eps] == [("alert-aaa", "high"), ("alert-bbb", "low")]
    assert eps[0].start_ms == BASE_TS_MS + 100_000 and eps[0].end_ms == BASE_TS_MS + 300_000
    assert eps[1].end_ms is None  # still open


def test_unknown_device_is_an_error(bidmc_session: Path) -> None:
    with pytest.raises(ValueError, match="no telemetry message of device nobody"):
        device_messages(bidmc_session, "nobody")


def test_cli_report_reads_the_analysis_file(bidmc_session: Path, tmp_path: Path) -> None:
    import json

    from streamer.cli.main import main

    analysis = tmp_path / "analysis.json"
    analysis.write_text(json.dumps(_analysis()))
    out = tmp_path / "r.html"
    assert main(["report", str(bidmc_session), "-o", str(out), "--analysis", str(analysis)]) == 0
    assert "alert-bbb" in out.read_text() and (tmp_path / "r.png").is_file()
