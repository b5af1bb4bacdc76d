"""Replay and record logic without a broker: pacing, timestamp rewriting, fan-out, loops, stop conditions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from streamer.config import recordings_dir
from streamer.contracts import TELEMETRY
from streamer.sessions.format import SessionRecord, SessionWriter, read_session
from streamer.sessions.importers import write_session
from streamer.sessions.replay import (
    OutRecord,
    ReplayPlan,
    from_consumer_record,
    progress_line,
    record_topics,
    replay,
    rewrite,
    scan,
    send_offset_s,
    should_stop,
    timestamp_shift_ms,
)

pytestmark = pytest.mark.unit

DATA = recordings_dir()


@pytest.fixture(scope="module")
def cinc_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real recording (Challenge 2017 A00007, 30 s of ECG) as a session."""
    out = tmp_path_factory.mktemp("replay") / "a00007.jsonl.gz"
    write_session("cinc2017", DATA / "challenge2017_af" / "A00007.mat", out, topic="t")
    return out


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s > 0
        self.sleeps.append(s)
        self.t += s


def _replay(session: Path, plan: ReplayPlan, passes: int = 1) -> tuple[list[tuple[float, OutRecord]], FakeClock]:
    clock, sent = FakeClock(), []
    stats = scan(read_session(session))
    replay(lambda: read_session(session), lambda out: sent.append((clock.t - 100.0, out)), plan,
           stats.first_ts_ms, passes=passes, clock=clock, sleep=clock.sleep)  # fmt: skip
    return sent, clock


def test_scan_reads_span_step_and_seqs(cinc_session: Path) -> None:
    records = list(read_session(cinc_session))
    stats = scan(records)
    assert stats.count == len(records) == 30
    assert stats.last_ts_ms - stats.first_ts_ms == 29_000 and stats.step_ms == 1000
    assert stats.max_seq == {"cinc2017-A00007": 29}
    assert stats.loop_period_ms == 30_000


@given(st.integers(0, 10**12), st.integers(0, 10**6), st.floats(0.1, 100))
def test_send_offset_scales_with_speed(first: int, dt_ms: int, speed: float) -> None:
    assert send_offset_s(first + dt_ms, first, speed) == pytest.approx(dt_ms / 1000 / speed)
    assert send_offset_s(first + dt_ms, first, math.inf) == 0.0
    assert send_offset_s(first - dt_ms, first, speed) == 0.0  # never before the start


def test_realtime_pacing_follows_timestamps(cinc_session: Path) -> None:
    for speed in (1.0, 4.0):
        sent, clock = _replay(cinc_session, ReplayPlan(speed=speed))
        expected = [(out.timestamp_ms - sent[0][1].timestamp_ms) / 1000 / speed for _, out in sent]
        assert [t for t, _ in sent] == pytest.approx(expected)
        assert clock.t - 100.0 == pytest.approx(29 / speed)


def test_fast_never_sleeps(cinc_session: Path) -> None:
    sent, clock = _replay(cinc_session, ReplayPlan(speed=math.inf))
    assert len(sent) == 30 and clock.sleeps == []


def test_identity_plan_sends_the_recorded_bytes(cinc_session: Path) -> None:
    records = list(read_session(cinc_session))
    sent, _ = _replay(cinc_session, ReplayPlan(speed=math.inf))
    assert [(o.key, o.value, o.timestamp_ms) for _, o in sent] == [(r.key, r.value, r.timestamp_ms) for r in records]


def test_timestamps_rewritten_so_first_message_is_now(cinc_session: Path) -> None:
    stats = scan(read_session(cinc_session))
    now_ms = 1_800_000_000_000
    shift = timestamp_shift_ms(stats, now_ms)
    sent, _ = _replay(cinc_session, ReplayPlan(speed=math.inf, shift_ms=shift))
    messages = [json.loads(o.value) for _, o in sent]
    assert messages[0]["ts_ms"] == now_ms == sent[0][1].timestamp_ms
    assert [m["ts_ms"] for m in messages] == [now_ms + 1000 * i for i in range(30)]
    assert timestamp_shift_ms(stats, now_ms, anchor="end") == now_ms - stats.last_ts_ms
    assert timestamp_shift_ms(stats, now_ms, keep=True) == 0


def test_fan_out_makes_valid_independent_devices(cinc_session: Path) -> None:
    sent, _ = _replay(cinc_session, ReplayPlan(speed=math.inf, fan_out=3))
    assert len(sent) == 90
    by_device: dict[str, list[int]] = {}
    for _, out in sent:
        msg = TELEMETRY.validate_json(out.value)  # remapped ids must still pass the contract
        assert out.key == msg.device_id.encode()
        by_device.setdefault(msg.device_id, []).append(msg.seq)
    assert len(by_device) == 3 and "cinc2017-A00007" not in by_device
    assert all(d.startswith("cinc2017-A00007") for d in by_device)
    assert all(seqs == list(range(30)) for seqs in by_device.values())


def test_loop_continues_seq_and_timestamps(cinc_session: Path) -> None:
    stats = scan(read_session(cinc_session))
    plan = ReplayPlan(speed=2.0, loop_period_ms=stats.loop_period_ms, max_seq=stats.max_seq)
    sent, clock = _replay(cinc_session, plan, passes=3)
    messages = [json.loads(o.value) for _, o in sent]
    assert [m["seq"] for m in messages] == list(range(90))
    ts = [m["ts_ms"] for m in messages]
    assert all(b - a == 1000 for a, b in zip(ts, ts[1:], strict=False))  # no gap, no overlap at the seams
    assert [o.timestamp_ms for _, o in sent] == ts
    assert clock.t - 100.0 == pytest.approx(89 / 2.0)  # pacing continues across passes


@given(st.integers(-(10**9), 10**9), st.integers(0, 5), st.integers(1, 4), st.integers(0, 10**7))
def test_rewrite_shifts_every_copy_by_one_constant(shift: int, loop: int, fan_out: int, period: int) -> None:
    value = json.dumps({"kind": "vitals", "device_id": "d", "patient_id": "p", "ts_ms": 10**12, "seq": 7,
                        "spo2_pct": 97.0})  # fmt: skip
    record = SessionRecord(topic="t", key=b"d", value=value.encode(), timestamp_ms=10**12 + 5)
    plan = ReplayPlan(shift_ms=shift, fan_out=fan_out, loop_period_ms=period, max_seq={"d": 9})
    outs = rewrite(record, plan, loop)
    assert len(outs) == fan_out and len({o.key for o in outs}) == fan_out
    for out in outs:
        msg = json.loads(out.value)
        assert msg["ts_ms"] - 10**12 == out.timestamp_ms - (10**12 + 5) == shift + loop * period
        assert msg["seq"] == 7 + loop * 10
        assert msg["spo2_pct"] == 97.0
        assert (msg["device_id"] == "d") == (msg["patient_id"] == "p") == (fan_out == 1)
        assert out.key == msg["device_id"].encode()


def test_non_json_values_pass_through_unchanged() -> None:
    record = SessionRecord(topic="t", key=b"d", value=b"\xff not json", timestamp_ms=1000)
    outs = rewrite(record, ReplayPlan(shift_ms=500, fan_out=2))
    assert [o.value for o in outs] == [b"\xff not json"] * 2
    assert [o.timestamp_ms for o in outs] == [1500, 1500]
    assert outs[0].key != outs[1].key


def test_interrupt_returns_what_was_sent(cinc_session: Path) -> None:
    sent: list[OutRecord] = []

    def send(out: OutRecord) -> None:
        if len(sent) == 5:
            raise KeyboardInterrupt
        sent.append(out)

    result = replay(lambda: read_session(cinc_session), send, ReplayPlan(speed=math.inf), 0, passes=None)
    assert result.interrupted and result.sent == 5


@given(st.integers(0, 100), st.floats(0, 100), st.one_of(st.none(), st.integers(1, 100)),
       st.one_of(st.none(), st.floats(0.1, 100)))  # fmt: skip
def test_should_stop(count: int, elapsed: float, max_messages: int | None, max_seconds: float | None) -> None:
    stop = should_stop(count, elapsed, max_messages=max_messages, max_seconds=max_seconds)
    hit_count = max_messages is not None and count >= max_messages
    hit_time = max_seconds is not None and elapsed >= max_seconds
    assert stop == (hit_count or hit_time)


def _consumer_record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("vitals.telemetry", 3, 0, offset, 1_600_000_000_000 + offset, 0, b"dev", value,
                          [("trace", b"\x01")], None, 3, len(value), 6)  # fmt: skip


def test_from_consumer_record_keeps_everything() -> None:
    rec = from_consumer_record(_consumer_record(42, b"{}"))
    assert rec == SessionRecord(
        topic="vitals.telemetry", key=b"dev", value=b"{}", timestamp_ms=1_600_000_000_042,
        partition=3, offset=42, headers=(("trace", b"\x01"),),
    )  # fmt: skip


class FakeConsumer:
    def __init__(self, batches: list[list[ConsumerRecord]], clock: FakeClock) -> None:
        self.batches, self.clock = batches, clock

    def poll(self, timeout_ms: int) -> dict[str, list[ConsumerRecord]]:
        if self.batches:
            return {"tp": self.batches.pop(0)}
        self.clock.t += timeout_ms / 1000  # an idle poll waits its timeout
        return {}


def test_record_stops_at_max_messages(tmp_path: Path) -> None:
    clock = FakeClock()
    consumer = FakeConsumer([[_consumer_record(i, b"x") for i in range(4)]] * 3, clock)
    with SessionWriter(tmp_path / "r.gz", source="t") as writer:
        n = record_topics(consumer, writer, max_messages=6, max_seconds=None, clock=clock)
    assert n == 6
    assert [r.offset for r in read_session(tmp_path / "r.gz")] == [0, 1, 2, 3, 0, 1]


def test_record_stops_after_seconds_on_an_idle_topic(tmp_path: Path) -> None:
    clock = FakeClock()
    consumer = FakeConsumer([[_consumer_record(0, b"x")]], clock)
    with SessionWriter(tmp_path / "r.gz", source="t") as writer:
        n = record_topics(consumer, writer, max_messages=None, max_seconds=2.0, clock=clock)
    assert n == 1 and 2.0 <= clock.t - 100.0 < 2.5


def test_progress_line() -> None:
    assert progress_line(50, 100, 2.0, width=10) == "[#####-----] 50/100  50%  25 msg/s"
    assert progress_line(7, None, 0.0) == "7 sent  - msg/s"


def test_cli_pacing_flags() -> None:
    from streamer.cli.main import build_parser

    parse = build_parser().parse_args
    assert parse(["replay", "s.gz"]).speed == 1.0
    assert parse(["replay", "s.gz", "--speed", "8"]).speed == 8.0
    assert parse(["replay", "s.gz", "--fast", "--fan-out", "3", "--loop"]).speed == math.inf
    with pytest.raises(SystemExit):
        parse(["replay", "s.gz", "--fast", "--realtime"])
    args = parse(["record", "a", "b", "-o", "x.gz", "--seconds", "5", "--max-messages", "9", "--from-beginning"])
    assert (args.topics, args.seconds, args.max_messages, args.from_beginning) == (["a", "b"], 5.0, 9, True)


def test_scan_counts_backward_jumps_of_a_record_after_record_session(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("A00007", "A00015"):
        (folder / f"{name}.mat").symlink_to((DATA / "challenge2017_af" / f"{name}.mat").resolve())
    write_session("cinc2017", folder, tmp_path / "seq.gz", topic="t", interleave=False)
    write_session("cinc2017", folder, tmp_path / "merged.gz", topic="t")
    assert scan(read_session(tmp_path / "seq.gz")).backward_jumps == 1  # the second record starts over
    assert scan(read_session(tmp_path / "merged.gz")).backward_jumps == 0


def test_auto_anchor_keeps_fast_replays_behind_the_ingest_clock() -> None:
    from streamer.sessions.replay import resolve_anchor

    assert resolve_anchor("auto", 1.0) == "start"
    assert resolve_anchor("auto", 20.0) == "end"
    assert resolve_anchor("auto", float("inf")) == "end"
    assert resolve_anchor("start", 20.0) == "start" and resolve_anchor("end", 1.0) == "end"
