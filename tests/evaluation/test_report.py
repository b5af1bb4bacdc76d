"""The report picture: a valid PNG of the expected size, an HTML page with every alert, episodes."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from streamer.config import recordings_dir
from streamer.contracts import Alert, Evidence, FeatureRecord, LatencyStamps, ModelRef, ScoreRecord
from streamer.evaluation.report import (
    FIG_WIDTH_PX,
    MARGIN_HEIGHT_PX,
    PANEL_HEIGHT_PX,
    device_messages,
    episodes,
    render_report,
)
from streamer.sessions.importers import BASE_TS_MS, write_session

pytestmark = pytest.mark.unit

DATA = recordings_dir()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
        ScoreRecord(device_id="bidmc-01", model=ModelRef(name="anomaly", version="t"),
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


def _height(n_panels: int) -> int:
    return MARGIN_HEIGHT_PX + PANEL_HEIGHT_PX * n_panels


def test_png_without_analysis_has_signal_panels_only(bidmc_session: Path, tmp_path: Path) -> None:
    out = render_report(bidmc_session, tmp_path / "r.png")
    # 3 waveforms (ecg, ppg, resp) and 3 numerics groups (HR, SpO2, resp rate).
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, _height(6))


def test_png_with_analysis_adds_feature_score_and_alert_panels(bidmc_session: Path, tmp_path: Path) -> None:
    out = render_report(bidmc_session, tmp_path / "r.png", _analysis())
    # + rates, signal quality, scores, alert lane.
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, _height(10))


def test_html_embeds_the_png_and_lists_the_device_alerts(bidmc_session: Path, tmp_path: Path) -> None:
    page = render_report(bidmc_session, tmp_path / "r.html", _analysis(), device_id="bidmc-01").read_text()
    for alert_id in ("alert-aaa", "alert-bbb"):
        assert alert_id in page
    assert "alert-other-device" not in page  # another device's alerts stay out
    assert page.count("<tr><td>") == 4
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert embedded is not None
    assert _png_size(base64.b64decode(embedded.group(1))) == (FIG_WIDTH_PX, _height(10))


def test_long_record_is_decimated_and_still_drawn(tmp_path: Path) -> None:
    session = tmp_path / "mitdb100.jsonl.gz"
    write_session("wfdb", DATA / "mitdb" / "100", session, topic="t")
    out = render_report(session, tmp_path / "m.png")
    assert _png_size(out.read_bytes()) == (FIG_WIDTH_PX, _height(1))  # one ECG panel, 650,000 samples


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
    assert "alert-bbb" in out.read_text()
