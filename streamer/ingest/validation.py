"""Stage 1, validation: bytes in, a validated telemetry message or a dead-letter reason out.

Pure code: no Kafka, no Faust. The ingest agent and the offline runner both call :func:`validate` and keep one
:class:`streamer.ingest.dedup.SeqTracker` per device.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from streamer.contracts import (
    MAX_REASON_CHARS,
    MAX_SAMPLES,
    TELEMETRY,
    DeadLetter,
    MotionMessage,
    ReasonCode,
    VitalsMessage,
    WaveformMessage,
)

Message = VitalsMessage | WaveformMessage | MotionMessage

_CHUNK_FIELDS = {"samples", "x_g", "y_g", "z_g"}
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_PREFIXES = {
    "oversized:": ReasonCode.OVERSIZED,
    "impossible:": ReasonCode.IMPOSSIBLE_VALUE,
    "empty:": ReasonCode.SCHEMA_VIOLATION,
    "malformed:": ReasonCode.SCHEMA_VIOLATION,
    "rate:": ReasonCode.BAD_SAMPLE_RATE,
}


@dataclass(frozen=True)
class Accepted:
    message: Message


# A telemetry message has one object and at most three arrays (motion), plus brackets inside its one short free-text
# field (units, <= 16 characters): more than this many brackets cannot be telemetry, so it is refused unparsed.
MAX_BRACKETS = 24


@dataclass(frozen=True)
class Rejected:
    """Why a message is refused. ``reason`` may quote input values and goes only into the dead letter;
    ``summary`` (field and error type, never a value) is what may be logged."""

    code: ReasonCode
    reason: str
    device_id: str | None = None
    summary: str = ""

    def log_text(self) -> str:
        """What a log line may say about this rejection: the code and the field/error type, never input values."""
        return f"{self.code} {self.summary}".rstrip()


def validate(raw: bytes, *, now_ms: int, max_message_bytes: int, future_margin_ms: int) -> Accepted | Rejected:
    """Validate one telemetry value exactly as received. Never raises on any input."""
    if len(raw) > max_message_bytes:
        return Rejected(
            ReasonCode.OVERSIZED,
            f"message of {len(raw)} bytes exceeds the {max_message_bytes}-byte limit",
            _scan_device_id(raw[:4096]),
            "message_bytes",
        )
    unparsed = _prescan(raw)
    if unparsed is not None:
        return unparsed
    try:
        msg = TELEMETRY.validate_json(raw)
    except ValidationError as exc:
        return _rejection(exc.errors(include_url=False), raw)
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: pydantic-core wraps nearly everything
        return Rejected(ReasonCode.MALFORMED_JSON, f"undecodable: {type(exc).__name__}", None, type(exc).__name__)
    if msg.ts_ms > now_ms + future_margin_ms:
        return Rejected(
            ReasonCode.FUTURE_TIMESTAMP,
            f"ts_ms {_short(msg.ts_ms)} is {_short(msg.ts_ms - now_ms)} ms ahead of the ingest clock "
            f"(margin {future_margin_ms} ms)",
            msg.device_id,
            "ts_ms future",
        )
    return Accepted(msg)


def _short(value: int) -> str:
    """An int for a reason text: a 5,000-digit timestamp is valid JSON, but not a reason (nor str()-able past 4,300)."""
    return str(value) if abs(value) < 10**20 else f"<{value.bit_length()}-bit number>"


def _prescan(raw: bytes) -> Rejected | None:
    """Refuse, before the full parse, what no contract allows: arrays over ``MAX_SAMPLES`` and deep nesting.

    A flat JSON array of n numbers has n - 1 commas between its brackets; counting them is a C-speed scan, where a
    full parse of a megabyte of numbers takes hundreds of milliseconds on a loaded core.
    """
    if raw.count(b"[") + raw.count(b"{") > MAX_BRACKETS:
        return Rejected(
            ReasonCode.SCHEMA_VIOLATION,
            f"structure: more than {MAX_BRACKETS} arrays/objects (telemetry is one flat object)",
            _scan_device_id(raw[:4096]),
            "structure too_deep",
        )
    start = raw.find(b"[")
    while start >= 0:
        end = raw.find(b"]", start)
        stop = end if end >= 0 else len(raw)
        if raw.count(b",", start, stop) >= MAX_SAMPLES:
            return Rejected(
                ReasonCode.OVERSIZED,
                f"an array has more than the {MAX_SAMPLES} elements any chunk may carry",
                _scan_device_id(raw[:4096]),
                "array too_long",
            )
        start = raw.find(b"[", stop)
    return None


def _rejection(errors: list[ErrorDetails], raw: bytes) -> Rejected:
    first = errors[0]
    code = _reason_code(first)
    loc = ".".join(str(p) for p in first["loc"])
    text = f"{loc}: {first['msg']}" if loc else first["msg"]
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    summary = f"{_safe_loc(first['loc'])} {first['type']}".strip()
    device = _peek_device_id(raw) if code is not ReasonCode.MALFORMED_JSON else None
    return Rejected(code, text[:2000], device, summary[:120])


def _safe_loc(loc: tuple[int | str, ...], known: Collection[str] | None = None) -> str:
    """The error's location with unknown (extra) key names blanked: keys of arbitrary input are input too."""
    names = _FIELD_NAMES if known is None else known
    return ".".join(str(p) if isinstance(p, int) or p in names else "<extra>" for p in loc)


def error_summary(exc: Exception, fields: Collection[str]) -> str:
    """A loggable account of a pydantic error: each field (names from ``fields`` only) and error type, no values."""
    if not isinstance(exc, ValidationError):
        return type(exc).__name__
    parts = [f"{_safe_loc(e['loc'], fields) or '<root>'} {e['type']}" for e in exc.errors(include_url=False)[:5]]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def loggable_id(value: str) -> str:
    """An identifier as it may be logged: itself when it has the shape of a pseudonymous id, else a placeholder."""
    return value if _ID_RE.fullmatch(value) else f"<not an id: {len(value)} chars>"


_FIELD_NAMES = frozenset(
    {"vitals", "waveform", "motion"}
    | set(VitalsMessage.model_fields)
    | set(WaveformMessage.model_fields)
    | set(MotionMessage.model_fields)
)


def _reason_code(err: ErrorDetails) -> ReasonCode:
    kind, loc = err["type"], [str(p) for p in err["loc"]]
    field_name = next((p for p in reversed(loc) if not p.isdigit()), "")
    if kind in ("json_invalid", "json_type"):
        return ReasonCode.MALFORMED_JSON
    if field_name == "schema_version":
        return ReasonCode.UNSUPPORTED_SCHEMA_VERSION
    if kind == "finite_number":
        return ReasonCode.NON_FINITE
    if field_name in _CHUNK_FIELDS and kind == "too_short":
        return ReasonCode.EMPTY_CHUNK
    if field_name in _CHUNK_FIELDS and kind == "too_long":
        return ReasonCode.OVERSIZED
    if field_name == "fs_hz" and kind in _RANGE_ERRORS:
        return ReasonCode.BAD_SAMPLE_RATE
    if kind in _RANGE_ERRORS:
        return ReasonCode.IMPOSSIBLE_VALUE
    if kind == "value_error":
        text = str(err["msg"]).removeprefix("Value error, ")
        for prefix, code in _PREFIXES.items():
            if text.startswith(prefix):
                return code
    return ReasonCode.SCHEMA_VIOLATION


def _peek_device_id(raw: bytes) -> str | None:
    """Best effort: the device id of a rejected message, for keying the dead letter."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    device = obj.get("device_id") if isinstance(obj, dict) else None
    return device if isinstance(device, str) and 0 < len(device) <= 64 else None


_DEVICE_RE = re.compile(rb'"device_id"\s*:\s*"([A-Za-z0-9._:-]{1,64})"')


def _scan_device_id(head: bytes) -> str | None:
    """The device id of a message too large to parse, found in its first bytes."""
    match = _DEVICE_RE.search(head)
    return match.group(1).decode() if match else None


def bounded_reason(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """A reason that fits the DeadLetter contract whatever went into it (numbers of any length, exception text)."""
    if len(text) <= limit:
        return text
    marker = f"... [{len(text) - limit} chars cut]"
    return text[: limit - len(marker)] + marker


def dead_letter(raw: bytes, rejected: Rejected, *, topic: str, partition: int, offset: int, now_ms: int) -> DeadLetter:
    return DeadLetter(
        reason_code=rejected.code,
        reason=bounded_reason(rejected.reason),
        original_b64=base64.b64encode(raw).decode("ascii"),
        original_size_bytes=len(raw),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        device_id=rejected.device_id,
        dead_lettered_at_ms=now_ms,
    )
