"""Bounded inputs: integers with sane limits, reasons that always fit the DeadLetter contract."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.contracts import MAX_REASON_CHARS, MAX_SEQ, DeadLetter, ReasonCode
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, Rejected, bounded_reason, dead_letter, validate

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
LIMITS = {"now_ms": NOW, "max_message_bytes": 1_048_576, "future_margin_ms": 60_000}


def _vitals(seq: int | str, ts_ms: int | str = NOW - 1000) -> bytes:
    return f'{{"kind":"vitals","device_id":"d-1","ts_ms":{ts_ms},"seq":{seq},"heart_rate_bpm":70}}'.encode()


def test_a_4000_digit_seq_is_dead_lettered_with_a_short_reason() -> None:
    result = validate(_vitals("9" * 4000), **LIMITS)
    assert isinstance(result, Rejected) and result.code is ReasonCode.IMPOSSIBLE_VALUE
    assert result.device_id == "d-1" and len(result.reason) < 200


@pytest.mark.parametrize(("seq", "ok"), [(MAX_SEQ, True), (MAX_SEQ + 1, False), (0, True), (-1, False)])
def test_seq_fits_in_63_bits(seq: int, ok: bool) -> None:
    assert isinstance(validate(_vitals(seq), **LIMITS), Accepted) is ok


@pytest.mark.parametrize("ts_ms", [10**17, 4_102_444_800_001, 253_402_300_800_000])  # millennia ahead
def test_timestamps_beyond_2100_are_impossible(ts_ms: int) -> None:
    result = validate(_vitals(1, ts_ms), now_ms=10**18, max_message_bytes=1_048_576, future_margin_ms=60_000)
    assert isinstance(result, Rejected) and result.code is ReasonCode.IMPOSSIBLE_VALUE


def test_stale_reason_after_the_largest_seq_fits_the_contract() -> None:
    tracker = SeqTracker(window=16)
    assert tracker.check(MAX_SEQ, NOW) is SeqStatus.NEW
    assert tracker.check(0, NOW - 1) is SeqStatus.STALE
    reason = f"seq 0 is older than the dedup window (16) below seq {tracker.max_seq}"
    letter = dead_letter(
        b"x", Rejected(ReasonCode.STALE_SEQ, reason, "d-1"), topic="t", partition=0, offset=1, now_ms=1
    )
    assert letter.reason == reason


@given(st.text(min_size=0, max_size=10_000))
def test_any_reason_becomes_a_valid_dead_letter(text: str) -> None:
    letter = dead_letter(b"{}", Rejected(ReasonCode.PROCESSING_ERROR, text), topic="t", partition=0, offset=0, now_ms=0)
    assert len(letter.reason) <= MAX_REASON_CHARS
    DeadLetter.model_validate_json(letter.model_dump_json())
    assert letter.reason == text or letter.reason.endswith("chars cut]")


def test_bounded_reason_keeps_short_text_and_cuts_long_text() -> None:
    assert bounded_reason("short") == "short"
    cut = bounded_reason("x" * 5000)
    assert len(cut) == MAX_REASON_CHARS and cut.startswith("x" * 1000) and "3000 chars cut" in cut
    assert json.loads(json.dumps(cut)) == cut
