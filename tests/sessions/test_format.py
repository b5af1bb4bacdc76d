"""Session file format: round trips (text and binary), determinism, and errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.sessions.format import (
    SessionError,
    SessionRecord,
    SessionWriter,
    decode_bytes,
    encode_bytes,
    read_session,
    record_from_json,
    record_to_json,
)

pytestmark = pytest.mark.unit

maybe_bytes = st.one_of(st.none(), st.binary(max_size=64), st.text(max_size=32).map(str.encode))
records = st.builds(
    SessionRecord,
    topic=st.text(alphabet="abcdefghij.-_", min_size=1, max_size=20),
    key=maybe_bytes,
    value=maybe_bytes,
    timestamp_ms=st.integers(min_value=0, max_value=2**53),
    partition=st.one_of(st.none(), st.integers(0, 1000)),
    offset=st.one_of(st.none(), st.integers(0, 2**62)),
    headers=st.lists(st.tuples(st.text(max_size=10), maybe_bytes), max_size=3).map(tuple),
)


@given(maybe_bytes)
def test_encode_decode_bytes_round_trip(data: bytes | None) -> None:
    assert decode_bytes(encode_bytes(data)) == data


def test_binary_is_base64_and_text_is_plain() -> None:
    assert encode_bytes(b"mitdb-203") == "mitdb-203"
    assert encode_bytes(b"\xff\x00") == {"b64": "/wA="}


@given(records)
def test_line_round_trip(record: SessionRecord) -> None:
    assert record_from_json(record_to_json(record)) == record


@settings(max_examples=20, deadline=None)  # file I/O on a shared machine
@given(st.lists(records, max_size=20))
def test_file_round_trip(tmp_path_factory: pytest.TempPathFactory, recs: list[SessionRecord]) -> None:
    path = tmp_path_factory.mktemp("s") / "x.jsonl.gz"
    with SessionWriter(path, source="test", created_ms=123) as writer:
        for r in recs:
            writer.write(r)
    assert writer.count == len(recs)
    reader = read_session(path)
    assert (reader.header.created_ms, reader.header.source) == (123, "test")
    assert list(reader) == recs


def test_layout_is_gzip_json_lines_with_header(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl.gz"
    rec = SessionRecord(
        topic="t",
        key=b"d",
        value=b"\x80binary",
        timestamp_ms=5,
        partition=2,
        offset=9,
        headers=(("h", b"v"),),
    )
    with SessionWriter(path, source="unit", created_ms=1) as writer:
        writer.write(rec)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert json.loads(lines[0]) == {"session": 1, "created_ms": 1, "source": "unit"}
    assert json.loads(lines[1]) == {
        "topic": "t",
        "partition": 2,
        "offset": 9,
        "key": "d",
        "headers": [["h", "v"]],
        "timestamp": 5,
        "value": {"b64": "gGJpbmFyeQ=="},
    }


def test_same_records_give_identical_bytes(tmp_path: Path) -> None:
    rec = SessionRecord(topic="t", key=b"k", value=b"v", timestamp_ms=1)
    for name in ("a.gz", "b.gz"):
        with SessionWriter(tmp_path / name, source="same", created_ms=7) as writer:
            writer.write(rec)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_not_a_session_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b'{"hello": 1}\n'))
    with pytest.raises(SessionError, match="not a session file"):
        read_session(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "v2.gz"
    path.write_bytes(gzip.compress(b'{"session": 2, "created_ms": 0, "source": "x"}\n'))
    with pytest.raises(SessionError, match="unsupported session version"):
        read_session(path)


def test_malformed_line_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(b'{"session": 1, "created_ms": 0, "source": "x"}\n{"topic": "t"}\n'))
    with read_session(path) as reader, pytest.raises(SessionError, match=r"m\.gz:2"):
        list(reader)
