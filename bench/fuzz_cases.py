"""Hostile telemetry for bench/fuzz.py: schema-generated, mutated, raw, truncated, huge-number, nested, boundary.

Every family is a function ``(rng, n, now_ms) -> list[bytes]``, seeded; the schema family draws instances of the
published JSON Schemas (``schemas/*.schema.json``) through bench/schema_strategy.py.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
KINDS = ("vitals", "waveform", "motion")


@functools.lru_cache(maxsize=2)
def schema_instances(seed: int, n: int) -> list[dict]:
    """``n`` instances of the three telemetry schemas (valid by the JSON Schema, not always by the contract)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from bench.schema_strategy import from_schema

    root = json.loads((SCHEMAS / "telemetry.schema.json").read_text())
    defs = root["$defs"]
    strategies = []
    for name in ("VitalsMessage", "WaveformMessage", "MotionMessage"):
        schema = dict(defs[name])
        schema["properties"] = dict(schema["properties"])
        for prop in ("samples", "x_g", "y_g", "z_g"):  # keep arrays short here; the oversized family goes long
            if prop in schema["properties"]:
                schema["properties"][prop] = {**schema["properties"][prop], "maxItems": 64}
        strategies.append(from_schema(schema))
    out: list[dict] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(strategies))
    def collect(instance: dict) -> None:
        out.append(instance)

    collect()
    return out


def _base(rng: random.Random, now_ms: int) -> dict:
    return {
        "device_id": f"fz-{rng.randrange(50)}",
        "ts_ms": now_ms - rng.randrange(600_000),
        "seq": rng.randrange(10**6),
    }


def good_message(rng: random.Random, now_ms: int) -> dict:
    """A message the contract accepts (one of the three kinds)."""
    base, kind = _base(rng, now_ms), rng.choice(KINDS)
    if kind == "vitals":
        return {**base, "kind": kind, "heart_rate_bpm": rng.uniform(40, 180), "spo2_pct": rng.uniform(85, 100)}
    if kind == "waveform":
        return {**base, "kind": kind, "signal": "ppg", "fs_hz": 125, "samples": [rng.random() for _ in range(125)]}
    axes = {a: [rng.uniform(-2, 2) for _ in range(50)] for a in ("x_g", "y_g", "z_g")}
    return {**base, "kind": kind, "fs_hz": 50, **axes}


_SWAPS: list[object] = [None, True, "72", "", [], {}, -1, 0, 1e308, -1e308, 2**63, "NaN", [1, "a"], {"$ref": 1}]


def mutate(rng: random.Random, obj: dict) -> dict:
    """One hostile edit: a field swapped for another type, dropped, added, or its array emptied."""
    out = dict(obj)
    key = rng.choice(sorted(out))
    edit = rng.randrange(5)
    if edit == 0:
        out[key] = rng.choice(_SWAPS)
    elif edit == 1:
        del out[key]
    elif edit == 2:
        out[rng.choice(["name", "patient_name", "x", "kind2", "__proto__"])] = "intruder"
    elif edit == 3 and isinstance(out.get(key), list):
        out[key] = []
    else:
        out["kind"] = rng.choice([*KINDS, "VITALS", "alert", ""])
    return out


def _schema_families(seed: int, n_schema: int) -> dict[str, Callable[[random.Random, int, int], list[bytes]]]:
    """Instances of the schemas as drawn, and the same instances each given one hostile edit (cheap to extend)."""

    def drawn(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
        pool = schema_instances(seed, n_schema)
        return [json.dumps(rng.choice(pool)).encode() for _ in range(n)]

    def edited(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
        pool = schema_instances(seed, n_schema)
        return [json.dumps(mutate(rng, rng.choice(pool))).encode() for _ in range(n)]

    return {"schema": drawn, "schema_mutated": edited}


def mutated(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    return [json.dumps(mutate(rng, good_message(rng, now_ms))).encode() for _ in range(n)]


def raw_bytes(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    prefixes = [b"", b"{", b'{"kind":"vitals",', b"\xef\xbb\xbf{", b"[", b'"', b"\x00"]
    return [rng.choice(prefixes) + rng.randbytes(rng.randrange(0, 600)) for _ in range(n)]


def truncated(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    out = []
    for _ in range(n):
        raw = json.dumps(good_message(rng, now_ms)).encode()
        out.append(raw[: rng.randrange(len(raw))])
    return out


def huge_numbers(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    numbers = [
        "1e400", "-1e400", "1e-400", "-0", "0e0", "9" * 400, "9" * 4000, "1" + "0" * 20000, "-" + "9" * 5000,
        "1.5e308", "4.9e-324", str(2**64), str(-(2**63) - 1), "0." + "1" * 5000, "1" * 100 + ".5e-99999",
    ]  # fmt: skip
    fields = ["ts_ms", "seq", "heart_rate_bpm", "spo2_pct", "fs_hz", "temp_c", "scale", "schema_version"]
    out = []
    for _ in range(n):
        obj = good_message(rng, now_ms)
        obj[rng.choice(fields)] = "__NUMBER__"
        out.append(json.dumps(obj).replace('"__NUMBER__"', rng.choice(numbers), 1).encode())
    return out


def deep_nesting(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    out = []
    for _ in range(n):
        depth = rng.choice([2, 10, 30, 100, 1000, 10_000, 100_000, 400_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        core = opener * depth + "1" + closer * depth
        if rng.random() < 0.5:
            core = json.dumps({**good_message(rng, now_ms), "heart_rate_bpm": 0})[:-1] + f', "x": {core}' + "}"
        out.append(core.encode()[: 1 << 20])
    return out


_LIMITS = [
    ("heart_rate_bpm", 0, 300), ("spo2_pct", 0, 100), ("resp_rate_bpm", 0, 100), ("temp_c", 20, 45),
    ("sbp_mmhg", 0, 300), ("dbp_mmhg", 0, 250), ("map_mmhg", 0, 280),
]  # fmt: skip


def boundary(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    """Values at and just past each physiological and structural limit of the contract."""
    out = []
    for _ in range(n):
        base, pick = _base(rng, now_ms), rng.randrange(4)
        if pick == 0:
            field, lo, hi = rng.choice(_LIMITS)
            value = rng.choice([lo, hi, lo - 1e-9, hi + 1e-9, lo + 1e-9, hi - 1e-9, -lo, hi * 10])
            msg = {**base, "kind": "vitals", field: value}
        elif pick == 1:
            fs = rng.choice([1, 20, 50, 125, 1000, 1000.0001, 2000, 19.999, 0.5])
            count = max(1, min(20_000, int(fs * rng.choice([0.5, 5, 5.0001]))))
            msg = {**base, "kind": "waveform", "signal": rng.choice(["ecg", "ppg", "resp"]), "fs_hz": fs}
            msg["samples"] = [0.0] * count
        elif pick == 2:
            g = rng.choice([64, 64.0001, -64, -64.0001, 0])
            msg = {**base, "kind": "motion", "fs_hz": 50, "x_g": [g], "y_g": [0.0], "z_g": [1.0]}
        else:
            msg = {**base, "kind": "vitals", "heart_rate_bpm": 60, "ts_ms": now_ms + rng.choice([60_000, 60_001, -1])}
            msg["seq"] = rng.choice([0, -1, 2**63 - 1, 2**63])
        out.append(json.dumps(msg).encode())
    return out


def oversized(rng: random.Random, n: int, now_ms: int) -> list[bytes]:
    """Arrays at MAX_SAMPLES and past it, up to about 1 MB (the size limit) and beyond."""
    out = []
    for _ in range(n):
        count = rng.choice([20_000, 20_001, 60_000, 200_000, 330_000, 500_000])
        msg = {**_base(rng, now_ms), "kind": "waveform", "signal": "ecg", "fs_hz": 1000}
        body = json.dumps(msg)[:-1] + ', "samples": [' + ",".join(["0"] * count) + "]}"
        out.append(body.encode())
    return out


def families(seed: int, n_schema: int) -> dict[str, Callable[[random.Random, int, int], list[bytes]]]:
    return {
        **_schema_families(seed, n_schema),
        "mutated": mutated,
        "raw_bytes": raw_bytes,
        "truncated": truncated,
        "huge_number": huge_numbers,
        "deep_nesting": deep_nesting,
        "boundary": boundary,
        "oversized": oversized,
    }


# Share of the cases per family (sums to 1).
MIX = {
    "schema": 0.10,
    "schema_mutated": 0.25,
    "mutated": 0.15,
    "raw_bytes": 0.12,
    "truncated": 0.10,
    "huge_number": 0.10,
    "deep_nesting": 0.05,
    "boundary": 0.12,
    "oversized": 0.01,
}
