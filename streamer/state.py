"""The device-state codec: one versioned binary format for everything a worker keeps per device.

A state is a JSON-like tree (dicts, lists, str, int, float, bool, None) whose numeric buffers may be numpy arrays
or long lists of floats. ``encode_state`` stores the tree's skeleton as compact JSON and every numeric buffer as raw
little-endian bytes beside it, so no float is ever formatted as text; ``decode_state`` gives back the same tree,
bit for bit (buffers come back as lists, as ``to_state`` wrote them, unless ``arrays=True``).

Layout (version 1)::

    b"VS" | version: u8 | flags: u8 | compressed( u32 skeleton length | skeleton JSON | buffer bytes ... )

``flags`` names the compression: 1 Zstandard (level 1, what is written), 0 zlib (what workers before 2026-12-03
wrote; still read, so a changelog written by an older worker restores). On the fleet's PPG device states (36 KB
before compression) Zstandard level 1 gives 20.3 KB in 117 us where zlib level 1 gave 20.6 KB in 702 us, and
reads back in 70 us against 168 (``bench/state_codec.py``, ``bench/results/state_codec.txt``).

A buffer in the skeleton is ``{"$nd": [offset, shape, dtype]}`` into the buffer bytes (C order). (Byte planes, every
value's first byte then every second byte, compressed worse on real filtered signals: their low bytes are noise.)

>>> blob = encode_state({"zi": [0.5] * 16, "n": 3})
>>> decode_state(blob) == {"zi": [0.5] * 16, "n": 3}
True
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from typing import Any

import numpy as np
import zstandard

MAGIC = b"VS"
VERSION = 1
ZLIB, ZSTD = 0, 1  # the flags byte: how the body is compressed
MIN_BUFFER_LEN = 8  # shorter float lists stay in the JSON skeleton: not worth a reference
_BUFFER_KEY = "$nd"
_DTYPES: dict[str, np.dtype[Any]] = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8"), "f4": np.dtype("<f4")}


class StateCodecError(ValueError):
    """Bytes that are not a device state of a version this code can read."""


def encode_state(state: Any) -> bytes:
    """A state tree as versioned bytes (see the module docstring)."""
    buffers: list[bytes] = []
    offset = [0]

    def pack(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: pack(v) for k, v in node.items()}
        if isinstance(node, np.ndarray):
            return ref(node)
        if isinstance(node, list | tuple):
            if len(node) >= MIN_BUFFER_LEN and all(type(v) is float for v in node):
                return ref(np.asarray(node, dtype="<f8"))
            return [pack(v) for v in node]
        if isinstance(node, np.floating):
            return float(node)
        if isinstance(node, np.integer):
            return int(node)
        return node

    def ref(arr: np.ndarray) -> dict[str, Any]:
        kind = "f8" if arr.dtype.kind == "f" and arr.dtype.itemsize == 8 else arr.dtype.kind + str(arr.dtype.itemsize)
        if kind not in _DTYPES:
            kind = "f8" if arr.dtype.kind == "f" else "i8"
        data = np.ascontiguousarray(arr.ravel(), dtype=_DTYPES[kind]).tobytes()
        buffers.append(data)
        entry = {_BUFFER_KEY: [offset[0], [int(n) for n in arr.shape], kind]}
        offset[0] += len(data)
        return entry

    skeleton = json.dumps(pack(state), separators=(",", ":"), allow_nan=True).encode()
    body = struct.pack("<I", len(skeleton)) + skeleton + b"".join(buffers)
    return MAGIC + bytes([VERSION, ZSTD]) + _compressor().compress(body)


def state_body(blob: bytes) -> bytes:
    """The uncompressed body of an encoded device state (skeleton length, skeleton, buffers), its header checked."""
    if len(blob) < 4 or blob[:2] != MAGIC:
        raise StateCodecError("not a vitalstream device state (bad magic)")
    if blob[2] != VERSION:
        raise StateCodecError(f"device state version {blob[2]} is not supported (this code reads {VERSION})")
    if blob[3] not in (ZLIB, ZSTD):
        raise StateCodecError(f"device state compression {blob[3]} is not supported (this code reads 0 and 1)")
    try:
        return zlib.decompress(blob[4:]) if blob[3] == ZLIB else _decompressor().decompress(blob[4:])
    except (zlib.error, zstandard.ZstdError) as exc:
        raise StateCodecError(f"corrupt device state: {exc}") from exc


def decode_state(blob: bytes, *, arrays: bool = False) -> Any:
    """The state tree that ``encode_state`` wrote; numeric buffers as lists (or numpy arrays with ``arrays``)."""
    body = state_body(blob)
    try:
        (n,) = struct.unpack_from("<I", body)
        skeleton = json.loads(body[4 : 4 + n])
    except (struct.error, ValueError) as exc:
        raise StateCodecError(f"corrupt device state: {exc}") from exc
    data = memoryview(body)[4 + n :]

    def unpack(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get(_BUFFER_KEY)
            if len(node) == 1 and isinstance(ref, list) and len(ref) == 3 and ref[2] in _DTYPES:
                start, shape, kind = ref
                count = int(np.prod(shape)) if isinstance(shape, list) else shape
                arr = np.frombuffer(data, dtype=_DTYPES[kind], count=count, offset=start).reshape(shape).copy()
                return arr if arrays else arr.tolist()
            return {k: unpack(v) for k, v in node.items()}
        if isinstance(node, list):
            return [unpack(v) for v in node]
        return node

    return unpack(skeleton)


_local = threading.local()  # a (de)compressor is not safe to share between threads: states are encoded on executors


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=1, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d
