"""Golden sessions: short cuts of real recordings in tests/data/golden with the alerts they must produce.

``vitalstream golden check`` compares the current code's offline analysis with the stored expectations;
``vitalstream golden update`` rewrites the expectations after an intended change (review the diff!), and
``--rebuild`` also cuts the sessions again from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analyze import analyze_records, default_inference
from .config import Settings
from .importers import BASE_TS_MS, write_session
from .sessions import SessionWriter, read_session

REPO = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO / "tests" / "data" / "golden"
DATA = Path(os.environ.get("VITALS_DATA_DIR", REPO.parent / "shared" / "data"))


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


def _cmd(args: argparse.Namespace) -> int:
    wanted = [g for g in GOLDENS if not args.only or g.name in args.only]
    failed = 0
    for g in wanted:
        if args.action == "update":
            if args.rebuild or not session_path(g).exists():
                cut(g)
            expected_path(g).write_text(json.dumps(summarize(g), indent=1) + "\n")
            print(f"updated {expected_path(g).relative_to(REPO)}")
            continue
        got, want = summarize(g), json.loads(expected_path(g).read_text())
        same = got["alerts"] == want["alerts"] and got["counts"] == want["counts"]
        failed += not same
        print(f"{'ok  ' if same else 'DIFF'} {g.name}: {len(got['alerts'])} alert transitions, {got['counts']}")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("golden", help="check or update the golden sessions in tests/data/golden")
    p.add_argument("action", choices=["check", "update"])
    p.add_argument("--rebuild", action="store_true", help="with update: cut the sessions again from ../shared/data")
    p.add_argument("--only", action="append", help="only this golden (repeatable)")
    p.set_defaults(func=_cmd)
