"""Stage 1, validation: bytes in, a validated telemetry message or a dead-letter reason out.

Pure code: no Kafka, no Faust. The ingest agent and the offline runner both call :func:`validate` and keep one
:class:`streamer.ingest.dedup.SeqTracker` per device.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from streamer.contracts import (
    MAX_REASON_CHARS,
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


@dataclass(frozen=True)
class Rejected:
    code: ReasonCode
    reason: str
    device_id: str | None = None


def validate(raw: bytes, *, now_ms: int, max_message_bytes: int, future_margin_ms: int) -> Accepted | Rejected:
    """Validate one telemetry value exactly as received. Never raises on any input."""
    if len(raw) > max_message_bytes:
        return Rejected(
            ReasonCode.OVERSIZED,
            f"message of {len(raw)} bytes exceeds the {max_message_bytes}-byte limit",
            _scan_device_id(raw[:4096]),
        )
    try:
        msg = TELEMETRY.validate_json(raw)
    except ValidationError as exc:
        return _rejection(exc.errors(include_url=False), raw)
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: pydantic-core wraps nearly everything
        return Rejected(ReasonCode.MALFORMED_JSON, f"undecodable: {type(exc).__name__}", None)
    if msg.ts_ms > now_ms + future_margin_ms:
        return Rejected(
            ReasonCode.FUTURE_TIMESTAMP,
            f"ts_ms {msg.ts_ms} is {msg.ts_ms - now_ms} ms ahead of the ingest clock (margin {future_margin_ms} ms)",
            msg.device_id,
        )
    return Accepted(msg)


def _rejection(errors: list[ErrorDetails], raw: bytes) -> Rejected:
    first = errors[0]
    code = _reason_code(first)
    loc = ".".join(str(p) for p in first["loc"])
    text = f"{loc}: {first['msg']}" if loc else first["msg"]
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return Rejected(code, text, _peek_device_id(raw) if code is not ReasonCode.MALFORMED_JSON else None)


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
