"""Golden sessions: short cuts of real recordings in tests/data/golden with the alerts they must produce.

``vitalstream golden check`` compares the current code's offline analysis with the stored expectations;
``vitalstream golden update`` rewrites the expectations after an intended change (review the diff!), and
``--rebuild`` also cuts the sessions again from ../shared/data.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.config import Settings, recordings_dir
from streamer.offline.analyze import analyze_records, default_inference
from streamer.sessions.format import SessionWriter, read_session
from streamer.sessions.importers import BASE_TS_MS, write_session

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO / "tests" / "data" / "golden"
DATA = recordings_dir()


@dataclass(frozen=True)
class Golden:
    name: str
    kind: str
    source: str  # relative to ../shared/data
    start_s: int
    end_s: int
    why: str


GOLDENS = (
    Golden(
        "mitdb201_af",
        "wfdb",
        "mitdb/201",
        0,
        600,
        "reference rhythm AFIB 0-6.31 min and 7.95-8.57 min, nodal/bradycardic runs between",
    ),
    Golden(
        "mitdb202_af_onset",
        "wfdb",
        "mitdb/202",
        1080,
        1680,
        "reference rhythm N until 19.04 min, then AFIB (short N runs), AFL at 25.45, AFIB at 26.25",
    ),
    Golden("mitdb100_clean", "wfdb", "mitdb/100", 0, 300, "clean sinus rhythm: nothing above low priority"),
    Golden("bidmc01_icu", "bidmc", "bidmc/bidmc_01_Signals.csv.gz", 0, 300, "ICU PPG/ECG/resp with numerics"),
)


def session_path(g: Golden) -> Path:
    return GOLDEN_DIR / f"{g.name}.jsonl.gz"


def expected_path(g: Golden) -> Path:
    return GOLDEN_DIR / f"{g.name}.expected.json"


def cut(g: Golden) -> Path:
    """Import the source recording and keep [start_s, end_s) of it."""
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.jsonl.gz"
        write_session(g.kind, DATA / g.source, full)
        lo, hi = BASE_TS_MS + g.start_s * 1000, BASE_TS_MS + g.end_s * 1000
        with SessionWriter(
            session_path(g), source=f"golden:{g.name}:{g.source}[{g.start_s}s,{g.end_s}s)", created_ms=BASE_TS_MS
        ) as writer:
            for record in read_session(full):
                if lo <= record.timestamp_ms < hi:
                    writer.write(record)
    return session_path(g)


def summarize(g: Golden, settings: Settings | None = None, inference: Any | None = None) -> dict[str, Any]:
    """What the stored expectation holds: every alert transition, and the counts of features and scores."""
    settings = settings or Settings()
    result = analyze_records(
        read_session(session_path(g)),
        settings,
        inference=inference if inference is not None else default_inference(settings),
    )
    return {
        "golden": g.name,
        "why": g.why,
        "source": f"{g.source} [{g.start_s} s, {g.end_s} s)",
        "alerts": [
            {
                "alert_id": a.alert_id,
                "condition": a.condition.value,
                "priority": a.priority.value,
                "state": a.state.value,
                "transition_ts_ms": a.transition_ts_ms,
            }
            for a in result.output.alerts
        ],
        "counts": {
            "valid": result.counts["valid"],
            "features": len(result.output.features),
            "scores": len(result.output.scores),
        },
    }
