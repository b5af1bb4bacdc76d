"""Session files: gzip JSON lines, one Kafka record per line, after a small header line.

A session is what really happened on a topic (``vitalstream record``) or a real recording turned
into telemetry (``vitalstream import``); ``vitalstream replay`` publishes it again. Layout::

    {"session": 1, "created_ms": 1577836800000, "source": "import:bidmc:bidmc_01"}
    {"topic": "vitals.telemetry", "partition": null, "offset": null, "key": "bidmc-01",
     "headers": [], "timestamp": 1577836800000, "value": "{\\"kind\\":\\"vitals\\",...}"}

Keys, values and header values are UTF-8 strings when they decode, else ``{"b64": "..."}``; a
null key or value stays null. ``partition`` and ``offset`` are null for records that never went
through a broker (imports). Files are written with a zero gzip mtime and no file name in the gzip
header, so the same records give byte-for-byte the same file.

Errors::

    SessionError (ValueError)
    └── not a session file, unsupported version, or a malformed line (with its line number)
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

SESSION_VERSION = 1
COMPRESS_LEVEL = 6  # gzip -9 costs about 5x the time for a few per cent smaller files


class SessionError(ValueError):
    """A file that is not a readable session file."""


@dataclass(frozen=True)
class SessionRecord:
    """One Kafka record as stored in a session (bytes in, bytes out)."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SessionHeader:
    """The first line of a session file."""

    created_ms: int
    source: str
    version: int = SESSION_VERSION


def encode_bytes(data: bytes | None) -> str | dict[str, str] | None:
    """UTF-8 text when the bytes decode, else ``{"b64": ...}``; None stays None."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def decode_bytes(obj: object) -> bytes | None:
    """Inverse of :func:`encode_bytes`."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, dict) and set(obj) == {"b64"} and isinstance(obj["b64"], str):
        return base64.b64decode(obj["b64"], validate=True)
    raise SessionError(f"expected a string, null or {{'b64': ...}}, got {obj!r:.80}")


def record_to_json(record: SessionRecord) -> str:
    """One session line (without the newline)."""
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": encode_bytes(record.key),
            "headers": [[name, encode_bytes(value)] for name, value in record.headers],
            "timestamp": record.timestamp_ms,
            "value": encode_bytes(record.value),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def record_from_json(line: str) -> SessionRecord:
    """Parse one session line; raises :class:`SessionError` on anything malformed."""
    try:
        obj: dict[str, Any] = json.loads(line)
        return SessionRecord(
            topic=str(obj["topic"]),
            key=decode_bytes(obj["key"]),
            value=decode_bytes(obj["value"]),
            timestamp_ms=int(obj["timestamp"]),
            partition=None if obj.get("partition") is None else int(obj["partition"]),
            offset=None if obj.get("offset") is None else int(obj["offset"]),
            headers=tuple((str(name), decode_bytes(value)) for name, value in obj.get("headers", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SessionError):
            raise
        raise SessionError(f"malformed session record: {exc}") from exc


class SessionWriter:
    """Streaming writer; use as ``with SessionWriter(path, source=...) as w: w.write(record)``."""

    def __init__(self, path: Path, *, source: str, created_ms: int | None = None) -> None:
        self.path = Path(path)
        self.header = SessionHeader(
            created_ms=int(time.time() * 1000) if created_ms is None else created_ms, source=source
        )
        self.count = 0
        self._raw = self.path.open("wb")
        # filename="" and mtime=0 keep the gzip header free of names and clocks (deterministic files).
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=COMPRESS_LEVEL)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n")
        header = {"session": self.header.version, "created_ms": self.header.created_ms, "source": source}
        self._text.write(json.dumps(header, separators=(",", ":")) + "\n")

    def write(self, record: SessionRecord) -> None:
        self._text.write(record_to_json(record) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._raw.closed:
            return
        self._text.close()  # closes the gzip stream, which writes the trailer
        self._raw.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SessionReader:
    """Iterator over the records of a session file; ``header`` is read on open."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._text = gzip.open(self.path, "rt", encoding="utf-8")  # noqa: SIM115 - an iterator owns it
        try:
            self.header = self._read_header(self._text.readline())
        except Exception:
            self._text.close()
            raise
        self._line_no = 1

    @staticmethod
    def _read_header(line: str) -> SessionHeader:
        try:
            obj = json.loads(line)
            version, created_ms, source = obj["session"], int(obj["created_ms"]), str(obj["source"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"not a session file (bad header line): {exc}") from exc
        if version != SESSION_VERSION:
            raise SessionError(f"unsupported session version {version!r} (known: {SESSION_VERSION})")
        return SessionHeader(created_ms=created_ms, source=source, version=version)

    def __iter__(self) -> Iterator[SessionRecord]:
        return self

    def __next__(self) -> SessionRecord:
        line = self._text.readline()
        if not line:
            self.close()
            raise StopIteration
        self._line_no += 1
        try:
            return record_from_json(line)
        except SessionError as exc:
            raise SessionError(f"{self.path}:{self._line_no}: {exc}") from exc

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_session(path: Path) -> SessionReader:
    """Open a session file for iteration: ``for record in read_session(path): ...``."""
    return SessionReader(path)
