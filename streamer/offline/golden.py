"""Golden sessions: short cuts of real recordings in tests/data/golden with the alerts they must produce.

``vitalstream golden check`` compares the current code's offline analysis with the stored expectations;
``vitalstream golden update`` rewrites the expectations after an intended change (review the diff!), and
``--rebuild`` also cuts the sessions again from ../shared/data.

Two expectations a golden: NAME.expected.json (every alert transition and the counts, readable in a diff) and
NAME.outputs.json.gz (every feature, score and alert as JSON, so that a change which moves any output value is
seen). Floats there are compared to within a few units in the last place, not bit for bit: numpy chooses its
exp/log kernels by CPU (AVX-512 machines use other ones), and the same code gives scores one or two ULP apart on
two machines (11 of 8,728 values of two goldens, all scores, measured 2026-12-04: on an AVX-512 machine
``vitalstream golden check --max-ulp 0 --only mitdb201_af --only bidmc01_icu`` lists them; the stored files were
written with ``NPY_DISABLE_CPU_FEATURES="AVX512_SPR AVX512_ICL X86_V4"``).
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.config import Settings, recordings_dir
from streamer.offline.analyze import Analysis, analyze_records, default_inference
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


def outputs_path(g: Golden) -> Path:
    return GOLDEN_DIR / f"{g.name}.outputs.json.gz"


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


def analyze(g: Golden, settings: Settings | None = None, inference: Any | None = None) -> Analysis:
    settings = settings or Settings()
    return analyze_records(
        read_session(session_path(g)),
        settings,
        inference=inference if inference is not None else default_inference(settings),
    )


def summarize(g: Golden, result: Analysis) -> dict[str, Any]:
    """What the stored expectation holds: every alert transition, and the counts of features and scores."""
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


OUTPUT_KINDS = ("features", "scores", "alerts")


def outputs(result: Analysis) -> dict[str, list[dict[str, Any]]]:
    """Every output record of an analysis as JSON values, in output order."""
    return {kind: [r.model_dump(mode="json") for r in getattr(result.output, kind)] for kind in OUTPUT_KINDS}


def write_outputs(g: Golden, result: Analysis) -> Path:
    body = "".join(
        json.dumps({"kind": kind, "record": record}, sort_keys=True) + "\n"
        for kind, records in outputs(result).items()
        for record in records
    )
    with gzip.GzipFile(outputs_path(g), "wb", mtime=0) as f:  # mtime 0: the same outputs give the same bytes
        f.write(body.encode())
    return outputs_path(g)


def read_outputs(g: Golden) -> dict[str, list[dict[str, Any]]]:
    stored: dict[str, list[dict[str, Any]]] = {kind: [] for kind in OUTPUT_KINDS}
    with gzip.open(outputs_path(g), "rt") as f:
        for line in f:
            row = json.loads(line)
            stored[row["kind"]].append(row["record"])
    return stored


def output_differences(got: Any, want: Any, *, max_ulp: int = 4, limit: int = 20) -> list[str]:
    """Where two output trees differ: floats by more than ``max_ulp`` units in the last place, anything else at all."""
    found: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                found.append(f"{where}: fields {sorted(a.keys() ^ b.keys())} on one side only")
                return
            for key in a:
                walk(a[key], b[key], f"{where}.{key}" if where else key)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                found.append(f"{where}: {len(a)} items, expected {len(b)}")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, float):
            if math.isnan(a) and math.isnan(b):
                return
            if not abs(a - b) <= max_ulp * math.ulp(max(abs(a), abs(b))):
                found.append(f"{where}: {a!r}, expected {b!r}")
        elif type(a) is not type(b) or a != b:
            found.append(f"{where}: {a!r}, expected {b!r}")

    walk(got, want, "")
    return found
