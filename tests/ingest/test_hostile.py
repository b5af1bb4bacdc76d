"""Hostile input: refused before the parse when no contract allows it, logged without values, and a seeded fuzz run."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streamer.contracts import MAX_SAMPLES, AlertAck, ReasonCode
from streamer.ingest.validation import Rejected, _prescan, dead_letter, error_summary, loggable_id, validate

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
LIMITS = {"now_ms": NOW, "max_message_bytes": 1_048_576, "future_margin_ms": 60_000}
BASE = {"device_id": "dev-1", "ts_ms": NOW - 1000, "seq": 1}
MARK = "ZQX"


def _wave(count: int) -> bytes:
    head = json.dumps({**BASE, "kind": "waveform", "signal": "ecg", "fs_hz": 1000})[:-1]
    return (head + ', "samples": [' + ",".join(["0"] * count) + "]}").encode()


def test_array_over_max_samples_is_refused_before_the_parse() -> None:
    raw = _wave(MAX_SAMPLES + 1)
    assert len(raw) < LIMITS["max_message_bytes"]
    unparsed = _prescan(raw)
    assert isinstance(unparsed, Rejected) and unparsed.code is ReasonCode.OVERSIZED
    assert unparsed.device_id == "dev-1"
    assert _prescan(_wave(MAX_SAMPLES)) is None  # at the limit the contract decides (here: chunk too long)
    assert validate(_wave(MAX_SAMPLES), **LIMITS).code is ReasonCode.OVERSIZED  # type: ignore[union-attr]


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_refused_before_the_parse(opener: str, closer: str) -> None:
    raw = (opener * 100_000 + "1" + closer * 100_000).encode()
    result = validate(raw, **LIMITS)
    assert isinstance(result, Rejected) and result.code is ReasonCode.SCHEMA_VIOLATION


@pytest.mark.parametrize("field", ["ts_ms", "seq"])
@pytest.mark.parametrize(("digits", "code"), [(400, ReasonCode.IMPOSSIBLE_VALUE), (5000, ReasonCode.MALFORMED_JSON)])
def test_huge_integers_are_refused_and_their_dead_letter_builds(field: str, digits: int, code: ReasonCode) -> None:
    raw = json.dumps({**BASE, "kind": "vitals", "heart_rate_bpm": 70, field: 0}).replace(
        f'"{field}": 0', f'"{field}": {"9" * digits}'
    )
    result = validate(raw.encode(), **LIMITS)
    assert isinstance(result, Rejected) and result.code is code
    letter = dead_letter(raw.encode(), result, topic="t", partition=0, offset=0, now_ms=NOW)
    assert len(letter.reason) <= 2000


@pytest.mark.parametrize(
    "payload",
    [
        {**BASE, "kind": "vitals", "heart_rate_bpm": f"{MARK} Jane Doe"},
        {**BASE, "kind": "vitals", "heart_rate_bpm": 70, f"{MARK}_name": "x"},
        {**BASE, "kind": "vitals", "heart_rate_bpm": 70, "patient_id": f"{MARK} Jane Doe"},
        {**BASE, "kind": f"{MARK} Jane Doe"},
        {**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": 50, "samples": [0.1], "units": f"{MARK} far too long x"},
        {**BASE, "kind": "vitals", "consciousness": MARK},
    ],
)
def test_what_may_be_logged_names_fields_and_types_never_values(payload: dict) -> None:
    result = validate(json.dumps(payload).encode(), **LIMITS)
    assert isinstance(result, Rejected)
    assert MARK not in result.log_text() and result.log_text().startswith(str(result.code))


def test_ack_error_summary_has_no_values() -> None:
    with pytest.raises(ValidationError) as err:
        AlertAck.model_validate_json(json.dumps({"alert_id": 5, "note": MARK * 300, f"{MARK}_who": MARK}))
    summary = error_summary(err.value, AlertAck.model_fields)
    assert MARK not in summary and "alert_id" in summary and "note" in summary
    assert loggable_id(f"{MARK} Jane Doe") != f"{MARK} Jane Doe" and loggable_id("a1b2c3") == "a1b2c3"


def test_seeded_fuzz_run_raises_nothing() -> None:
    from bench.fuzz import run_inprocess

    report = run_inprocess(cases=2_000, seed=7)
    assert report["cases"] == 2_000
    assert report["exceptions"] == 0, report["exception_examples"]
    assert set(report["outcomes_by_family"]) >= {"schema", "raw_bytes", "huge_number", "deep_nesting", "oversized"}


def test_a_resend_below_the_window_is_stale_live_and_restored_alike() -> None:
    """The case hypothesis and the broker fuzz found: a live tracker called it DUPLICATE, a restored one STALE."""
    from streamer.ingest.dedup import SeqStatus, SeqTracker

    live = SeqTracker(window=16)
    assert [live.check(s) for s in (0, 64)] == [SeqStatus.NEW, SeqStatus.NEW]
    restored = SeqTracker.from_state(live.to_state(), 16)
    assert live.check(0) is restored.check(0) is SeqStatus.STALE
