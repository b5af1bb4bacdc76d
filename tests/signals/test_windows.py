"""Event-time plumbing: ordering, late and duplicate chunks, gaps, window grid, numerics, silence, quality."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.config import Settings, recordings_dir
from streamer.contracts import VitalsMessage, WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.signals.device import DeviceSignalProcessor
from streamer.signals.numerics import TumblingNumerics, _columns
from streamer.signals.windows import BeatTable, Reset, Samples, SampleStream, WindowSchedule
from streamer.state import decode_state, encode_state

pytestmark = pytest.mark.unit
FS = 125.0


def _chunks(x: np.ndarray, size: int, t0: int = EPOCH_MS) -> list[tuple[int, int, np.ndarray]]:
    return [(t0 + round(i * 1000 / FS), k, x[i : i + size]) for k, i in enumerate(range(0, len(x), size))]


def _emitted(events: list) -> np.ndarray:
    return np.concatenate([e.values for e in events if isinstance(e, Samples)] or [np.zeros(0)])


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(8)), dup=st.lists(st.integers(0, 7), max_size=4))
def test_late_and_duplicate_chunks_within_grace_are_put_in_order(order, dup) -> None:
    x = np.random.default_rng(0).normal(size=8 * 125)
    chunks = _chunks(x, 125)
    stream = SampleStream(FS, late_grace_ms=10_000)
    events = []
    for k in list(order) + list(dup):  # every chunk once, then some again
        events += stream.push(*chunks[k])
    events += stream.release()
    starts = [e.start for e in events if isinstance(e, Samples)]
    assert np.array_equal(_emitted(events), x)
    assert starts == sorted(starts)
    assert stream.counts["duplicates"] == len(dup)
    assert stream.counts["gaps_bridged"] == stream.counts["resets"] == 0


def test_same_samples_under_a_new_seq_are_dropped() -> None:
    x = np.arange(500.0)
    stream = SampleStream(FS, late_grace_ms=2000)
    (ts, _, first), (ts2, _, second) = _chunks(x, 250)
    out = stream.push(ts, 1, first) + stream.push(ts, 7, first) + stream.push(ts2, 8, second)
    assert np.array_equal(_emitted(out), x)
    assert stream.counts["duplicates"] == 1


def test_short_gap_is_bridged_and_long_gap_resets() -> None:
    x = np.arange(1000.0)
    stream = SampleStream(FS, late_grace_ms=0)
    chunks = _chunks(x, 125)
    out = stream.push(*chunks[0]) + stream.push(*chunks[1])
    out += stream.push(chunks[2][0] + 400, 3, chunks[2][2])  # 0.4 s (50 samples) later than expected
    bridged = [e for e in out if isinstance(e, Samples) and e.n_interpolated]
    assert len(bridged) == 1 and bridged[0].n_interpolated == 50
    ramp = bridged[0].values[:50]
    assert np.all(np.diff(ramp) > 0) and ramp[0] > x[249] and ramp[-1] < chunks[2][2][0]
    out = stream.push(chunks[2][0] + 5000, 4, chunks[3][2])  # 4.6 s hole: never interpolated
    assert isinstance(out[0], Reset) and out[0].gap_ms > 1000
    assert out[1].start == 0 and stream.counts["resets"] == 1


def test_hole_waits_for_late_chunk_until_grace_then_bridges() -> None:
    x = np.arange(750.0)
    chunks = _chunks(x, 125)
    stream = SampleStream(FS, late_grace_ms=2000)
    out = stream.push(*chunks[0]) + stream.push(*chunks[2]) + stream.push(*chunks[3])
    assert len(_emitted(out)) == 125  # chunk 1 missing: 2 and 3 are held
    out = stream.push(*chunks[1])  # arrives late, within the grace
    assert np.array_equal(_emitted(out), x[125:500])
    out = stream.push(*chunks[5])  # chunk 4 never comes: released once newer data pass the grace
    assert len(_emitted(out)) == 0
    out = stream.release()
    assert len(_emitted(out)) == 250 and stream.counts["gaps_bridged"] == 1


def test_window_grid_is_epoch_aligned() -> None:
    sched = WindowSchedule(window_ms=8000, hop_ms=2000)
    sched.next_start_ms = sched.first_start(EPOCH_MS + 1234.0)
    assert sched.next_start_ms == EPOCH_MS + 2000
    assert sched.due(EPOCH_MS + 13_999) == [
        (EPOCH_MS + 2000, EPOCH_MS + 10_000),
        (EPOCH_MS + 4000, EPOCH_MS + 12_000),
    ]


def test_numerics_tumble_per_minute_and_accept_late_within_grace() -> None:
    win = TumblingNumerics(60_000, late_grace_ms=2000)
    t0 = EPOCH_MS - EPOCH_MS % 60_000
    assert win.add(t0 + 1000, {"heart_rate_bpm": 70}) == []
    assert win.add(t0 + 61_000, {"heart_rate_bpm": 90}) == []
    assert win.add(t0 + 59_000, {"heart_rate_bpm": 72}) == []  # late, within grace
    closed = win.add(t0 + 62_500, {"heart_rate_bpm": 91})
    assert [(s, [r["heart_rate_bpm"] for r in rows]) for s, rows in closed] == [(t0, [70, 72])]
    assert win.add(t0 + 30_000, {"heart_rate_bpm": 1}) == []  # too late: its window is gone
    assert [s for s, _ in win.close_all()] == [t0 + 60_000]


def test_numerics_window_features() -> None:
    proc = DeviceSignalProcessor("d1", Settings())
    t0 = EPOCH_MS - EPOCH_MS % 60_000
    for k, hr in enumerate([60.0, 80.0, 70.0]):
        proc.on_message(VitalsMessage(device_id="d1", ts_ms=t0 + k * 10_000, seq=k, heart_rate_bpm=hr))
    proc.on_message(VitalsMessage(device_id="d1", ts_ms=t0 + 30_000, seq=3, spo2_pct=95, consciousness="V"))
    (w,) = proc.flush().windows
    assert w.signal == "numerics" and w.window_end_ms - w.window_start_ms == 60_000
    f = w.features
    assert (f["heart_rate_bpm"], f["heart_rate_bpm_min"], f["heart_rate_bpm_max"]) == (70.0, 60.0, 80.0)
    assert f["spo2_pct"] == 95.0 and f["consciousness_code"] == 2.0 and f["temp_c"] is None


def _ppg_messages(x: np.ndarray, t0: int = EPOCH_MS) -> list[WaveformMessage]:
    return [
        WaveformMessage(device_id="d1", ts_ms=ts, seq=k, signal="ppg", fs_hz=FS, samples=list(c))
        for ts, k, c in _chunks(x, 125, t0)
    ]


def test_device_silent_once_then_cleared_by_data() -> None:
    cfg = Settings(silence_timeout_s=30)
    proc = DeviceSignalProcessor("d1", cfg)
    msgs = _ppg_messages(np.sin(np.arange(20 * 125) / 10.0))
    for m in msgs:
        proc.on_message(m, ingest_ts_ms=m.ts_ms + 100)
    last = msgs[-1].ts_ms + 100
    assert proc.on_tick(last + 29_000).events == ()
    silent = proc.on_tick(last + 30_000)
    assert [(e.condition, e.active) for e in silent.events] == [("DEVICE_SILENT", True)]
    assert len(silent.windows) >= 1  # the quiet device's last window still closes
    assert proc.on_tick(last + 90_000).events == ()  # once only
    back = proc.on_message(_ppg_messages(np.zeros(125), last + 95_000)[0], ingest_ts_ms=last + 95_100)
    assert [(e.condition, e.active) for e in back.events] == [("DEVICE_SILENT", False)]


def test_low_signal_quality_turns_on_and_off_on_transitions_only() -> None:
    ppg = load_bidmc(recordings_dir() / "bidmc", "bidmc_03")["ppg"][: 60 * 125].copy()
    ppg[20 * 125 : 36 * 125] = ppg[20 * 125]  # sensor stuck for 16 s: flat line
    proc = DeviceSignalProcessor("d1", Settings())
    outs = [proc.on_message(m) for m in _ppg_messages(ppg)] + [proc.flush()]
    events = [e for o in outs for e in o.events]
    windows = [w for o in outs for w in o.windows]
    assert [(e.condition, e.active) for e in events] == [
        ("LOW_SIGNAL_QUALITY", True),
        ("LOW_SIGNAL_QUALITY", False),
    ]
    on, off = events
    assert EPOCH_MS + 20_000 < on.ts_ms <= EPOCH_MS + 30_000 and off.ts_ms > EPOCH_MS + 36_000
    bad = [w for w in windows if not w.usable]
    assert bad and all(w.features["pulse_rate_bpm"] is None and w.rr_ms == () for w in bad)


def test_numerics_window_closes_on_the_wall_clock_when_no_later_data_come() -> None:
    proc = DeviceSignalProcessor("d1", Settings(late_grace_ms=2000, silence_timeout_s=600))
    t0 = EPOCH_MS - EPOCH_MS % 60_000
    offset_ms = 700  # the broker sees each message 0.7 s after the device stamped it
    proc.on_message(VitalsMessage(device_id="d1", ts_ms=t0 + 5000, seq=0, spo2_pct=97), t0 + 5000 + offset_ms)
    assert proc.on_tick(t0 + 60_000 + 2000 + offset_ms - 1).windows == ()
    (w,) = proc.on_tick(t0 + 60_000 + 2000 + offset_ms).windows
    assert (w.signal, w.window_start_ms, w.features["spo2_pct"]) == ("numerics", t0, 97.0)


def test_a_device_restarting_its_seq_counter_is_not_dropped() -> None:
    x = np.arange(1000.0)
    chunks = _chunks(x, 250)
    stream = SampleStream(FS, late_grace_ms=0)
    out = stream.push(chunks[0][0], 0, chunks[0][2]) + stream.push(chunks[1][0], 1, chunks[1][2])
    out += stream.push(chunks[2][0], 0, chunks[2][2]) + stream.push(chunks[3][0], 1, chunks[3][2])
    assert np.array_equal(_emitted(out), x) and stream.counts["duplicates"] == 0


row_values = (
    st.none() | st.floats(allow_nan=True, width=64) | st.integers(0, 3) | st.booleans() | st.sampled_from("ACV")
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"hr": row_values, "spo2": row_values, "avpu": row_values}), max_size=12),
       ragged=st.booleans())  # fmt: skip
def test_numerics_state_kept_column_by_column_is_the_whole_window_packed(rows, ragged) -> None:
    if ragged and rows:
        rows[len(rows) // 2] = {"hr": 1.0}
    win = TumblingNumerics(60_000, 0)
    for k, row in enumerate(rows):
        win.add(1_000 + k, row)
    state = win.to_state()
    if rows:
        assert repr(state["open"][0]) == repr(_columns(0, rows))  # repr: NaN and array contents compared as text
    back = TumblingNumerics(60_000, 0)
    back.load_state(state)
    as_items = lambda w: repr({s: [sorted(r.items()) for r in rows] for s, rows in w.open.items()})  # noqa: E731
    assert as_items(back) == as_items(win) and repr(back.to_state()) == repr(state)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans(), st.integers(0, 60)), max_size=300))
def test_beat_table_holds_what_a_list_of_rows_holds(steps) -> None:
    """Appends in index order and drops from the front, through the buffer's moves and growth, keep exactly the
    rows a plain list keeps, and a table rebuilt from its rows continues alike."""
    table, model, index = BeatTable(), [], 0
    for gap, drop, back in steps:
        index += gap
        if drop:
            table.drop_before(index - back)
            model = [r for r in model if r[0] >= index - back]
        else:
            row = [index, index + back, gap / 7.0, -back / 3.0]
            table.append(*row)
            model.append(row)
        assert np.array_equal(table.rows, np.array(model, dtype=float).reshape(-1, 4))
        assert len(table) == len(model)
    again = BeatTable(table.rows.copy())
    again.append(index + 1, index + 1, 1.0, 0.0)
    table.append(index + 1, index + 1, 1.0, 0.0)
    assert np.array_equal(again.rows, table.rows)


def test_beat_table_refuses_a_beat_out_of_order() -> None:
    table = BeatTable([[10, 12, 1.0, 0.0]])
    with pytest.raises(ValueError, match="beats come in order"):
        table.append(9, 13, 1.0, 0.0)


# -- numerics windows closed by the seq watermark --------------------------------------------------------------
T0 = EPOCH_MS - EPOCH_MS % 60_000


def _vitals(seq: int, ts_ms: int, hr: float = 70.0) -> VitalsMessage:
    return VitalsMessage(device_id="d1", ts_ms=ts_ms, seq=seq, heart_rate_bpm=hr)


def _numerics_closed(proc: DeviceSignalProcessor, msgs: list[VitalsMessage]) -> list[tuple[int, int, float]]:
    """(index of the message that closed it, window start, highest heart rate) of each numerics window, in order."""
    return [
        (i, w.window_start_ms, w.features["heart_rate_bpm_max"])
        for i, m in enumerate(msgs)
        for w in proc.on_message(m, ingest_ts_ms=m.ts_ms).windows
        if w.signal == "numerics"
    ]


def test_a_numerics_window_closes_at_the_first_message_past_its_end_when_no_seq_is_missing() -> None:
    msgs = [_vitals(k, T0 + k * 1000) for k in range(64)]
    assert _numerics_closed(DeviceSignalProcessor("d1", Settings()), msgs) == [(60, T0, 70.0)]
    # Without it (or as before), the message 2 s (the late grace) past the end closes it.
    off = Settings(numerics_close_on_seq=False)
    assert _numerics_closed(DeviceSignalProcessor("d1", off), msgs) == [(62, T0, 70.0)]


def test_a_missing_seq_holds_the_window_until_it_comes_and_then_it_is_counted() -> None:
    msgs = [_vitals(k, T0 + k * 1000) for k in range(64)]
    late = _vitals(59, T0 + 59_000, hr=120.0)  # stamped inside the first window, arrives 1.5 s after its end
    order = msgs[:59] + msgs[60:62] + [late] + msgs[62:]
    assert _numerics_closed(DeviceSignalProcessor("d1", Settings()), order) == [(61, T0, 120.0)]


def test_a_lost_message_falls_back_to_the_grace_and_the_watermark_recovers() -> None:
    msgs = [_vitals(k, T0 + k * 1000) for k in range(200) if k != 30]  # seq 30 never comes
    closed = _numerics_closed(DeviceSignalProcessor("d1", Settings()), msgs)
    # The first window waits for the grace (the lost message could still come) ...
    assert closed[0] == (61, T0, 70.0)
    # ... and so does the second: at seq 95 (64 seqs above the gap) the gap is given up, and the watermark counts
    # again only once the grace has closed past 95 s; the third closes at the first message past its end.
    assert [(i, start) for i, start, _ in closed[1:]] == [(121, T0 + 60_000), (179, T0 + 120_000)]


def test_a_device_first_seen_mid_stream_waits_for_the_grace_once() -> None:
    msgs = [_vitals(500 + k, T0 + 30_000 + k * 1000) for k in range(160)]
    closed = _numerics_closed(DeviceSignalProcessor("d1", Settings()), msgs)
    assert [(i, start) for i, start, _ in closed] == [(32, T0), (90, T0 + 60_000), (150, T0 + 120_000)]


def test_a_restarted_counter_waits_for_the_grace_once() -> None:
    msgs = [_vitals(k, T0 + k * 1000) for k in range(70)] + [_vitals(k, T0 + (70 + k) * 1000) for k in range(120)]
    closed = _numerics_closed(DeviceSignalProcessor("d1", Settings()), msgs)
    assert [(i, start) for i, start, _ in closed] == [(60, T0), (122, T0 + 60_000), (180, T0 + 120_000)]


def test_the_watermark_survives_a_restore_mid_gap() -> None:
    msgs = [_vitals(k, T0 + k * 1000) for k in range(130)]
    order = msgs[:40] + msgs[41:100] + [msgs[40]] + msgs[100:]  # seq 40 a minute late: given up, then too late
    whole = DeviceSignalProcessor("d1", Settings())
    expected = [whole.on_message(m, ingest_ts_ms=m.ts_ms) for m in order]
    for cut in (45, 90, 101):
        first = DeviceSignalProcessor("d1", Settings())
        head = [first.on_message(m, ingest_ts_ms=m.ts_ms) for m in order[:cut]]
        restored = DeviceSignalProcessor.from_state(decode_state(encode_state(first.to_state())), Settings())
        assert head + [restored.on_message(m, ingest_ts_ms=m.ts_ms) for m in order[cut:]] == expected
    assert whole.stats["numerics_too_late"] == 1


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.integers(0, 9_000), min_size=40, max_size=160),
    lost=st.sets(st.integers(0, 159), max_size=6),
)
def test_the_watermark_only_moves_windows_earlier_never_changes_their_rows(delays: list[int], lost: set[int]) -> None:
    """Any arrival order (each message up to 9 s late, some lost) with timestamps increasing with seq: every
    window holds the same rows with the watermark as with the late grace alone, and as many messages come too late."""
    sent = [_vitals(k, T0 + k * 500, hr=60.0 + k) for k in range(len(delays)) if k not in lost]
    order = sorted(sent, key=lambda m: m.ts_ms + delays[m.seq])

    def windows(close_on_seq: bool) -> tuple[list[tuple[int, dict]], int]:
        proc = DeviceSignalProcessor("d1", Settings(numerics_window_s=5.0, numerics_close_on_seq=close_on_seq))
        outs = [proc.on_message(m, ingest_ts_ms=m.ts_ms) for m in order] + [proc.flush()]
        found = sorted((w.window_start_ms, w.features) for o in outs for w in o.windows if w.signal == "numerics")
        return found, proc.stats["numerics_too_late"]

    assert windows(True) == windows(False)
