"""Importers: real PhysioNet recordings turned into telemetry sessions (``vitalstream import``).

Sources (cite them when you publish results made from them):

- ``wfdb``: any WFDB record, channel 0 as ECG; written for the MIT-BIH Arrhythmia Database (channel 0
  = MLII, 360 Hz, mV) - Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng
  Med Biol 20(3):45-50 (2001).
- ``bidmc``: BIDMC PPG and Respiration Dataset, 125 Hz PLETH/II/RESP and 1 Hz monitor numerics -
  Pimentel MAF et al. IEEE Trans Biomed Eng 64(8):1914-1923 (2017).
- ``cinc2017``: PhysioNet/CinC Challenge 2017 single-lead AliveCor ECG, 300 Hz, 1000 units/mV -
  Clifford GD et al. AF classification from a short single lead ECG recording. CinC 44 (2017).
- ``sepsis2019``: PhysioNet/CinC Challenge 2019 hourly ICU vitals - Reyna MA et al. Crit Care Med
  48(2):210-217 (2020).
- All from PhysioNet: Goldberger AL et al. Circulation 101(23):e215-e220 (2000).

Timing: every record starts at ``BASE_TS_MS`` = 2020-01-01T00:00:00Z; a message's ``ts_ms`` is that base
plus the record time of its first sample (sample index / fs for waveforms, the ``Time [s]`` column for
BIDMC numerics, the 0-based row index in hours for Challenge 2019). Waveforms are cut into chunks of
exactly 1 s (the last may be shorter). One device per record, ``seq`` from 0 increasing over all its
messages, which are ordered by (ts_ms, kind, signal). Imports are byte-for-byte deterministic.

Values the contract rejects (SpO2 0, HR 0, diastolic not below systolic, ...) are omitted from their
message and counted in :class:`ImportSummary` (``rejected``), and a row left with no value is skipped and
counted; a waveform chunk with non-finite samples is skipped and counted. So every message written
validates with ``streamer.contracts.TELEMETRY``, and nothing disappears without a count.
"""

from __future__ import annotations

import csv
import heapq
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from streamer.config import Settings
from streamer.contracts import TELEMETRY, VitalsMessage
from streamer.progress import track
from streamer.sessions.bidmc import read_csv_columns
from streamer.sessions.format import SessionRecord, SessionWriter

log = logging.getLogger(__name__)

BASE_TS_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
CHUNK_S = 1.0
BIDMC_WAVEFORMS = {"PLETH": "ppg", "II": "ecg", "RESP": "resp"}
BIDMC_NUMERICS = {"HR": "heart_rate_bpm", "SpO2": "spo2_pct", "RESP": "resp_rate_bpm"}
SEPSIS_VITALS = {
    "HR": "heart_rate_bpm", "O2Sat": "spo2_pct", "Temp": "temp_c", "SBP": "sbp_mmhg",
    "MAP": "map_mmhg", "DBP": "dbp_mmhg", "Resp": "resp_rate_bpm",
}  # fmt: skip


@dataclass
class ImportSummary:
    """What an import wrote and what it left out (and why)."""

    records: int = 0
    messages: Counter[str] = field(default_factory=Counter)  # "vitals", "waveform:ecg", ...
    rejected: Counter[str] = field(default_factory=Counter)  # contract field -> values omitted
    empty_rows: int = 0  # numerics rows (hours) without any measured value: no message
    skipped_rows: int = 0  # numerics rows whose every value the contract rejects
    skipped_chunks: int = 0  # waveform chunks with non-finite samples

    def lines(self) -> list[str]:
        out = [f"records: {self.records}", f"messages: {sum(self.messages.values())}"]
        out += [f"  {name}: {n}" for name, n in sorted(self.messages.items())]
        out.append(f"numerics rows without any value (no message): {self.empty_rows}")
        out.append(f"skipped numerics rows (every value rejected): {self.skipped_rows}")
        out.append(f"skipped waveform chunks (non-finite samples): {self.skipped_chunks}")
        out.append(f"rejected values (omitted, outside the contract): {sum(self.rejected.values())}")
        out += [f"  {name}: {n}" for name, n in sorted(self.rejected.items())]
        return out


@dataclass(frozen=True)
class _Pending:
    """A message before its seq is known (seq follows the per-device order)."""

    ts_ms: int
    kind: str
    signal: str
    fields: dict[str, object]


def _waveforms(samples: np.ndarray, fs_hz: float, signal: str, units: str | None, summary: ImportSummary):
    """1 s chunks of one channel, each stamped with the record time of its first sample."""
    n = max(1, round(fs_hz * CHUNK_S))
    for start in range(0, len(samples), n):
        chunk = samples[start : start + n]
        if not np.all(np.isfinite(chunk)):
            summary.skipped_chunks += 1
            continue
        fields: dict[str, object] = {"signal": signal, "fs_hz": float(fs_hz), "samples": chunk.tolist()}
        if units:
            fields["units"] = units
        yield _Pending(BASE_TS_MS + round(start * 1000 / fs_hz), "waveform", signal, fields)


def _valid_alone(name: str, value: float) -> bool:
    try:
        VitalsMessage(device_id="x", ts_ms=0, seq=0, **{name: value})  # type: ignore[arg-type]
    except ValidationError:
        return False
    return True


def _vitals(ts_ms: int, values: dict[str, float], summary: ImportSummary) -> _Pending | None:
    """A vitals message of the finite values the contract accepts; None (counted) when none is left."""
    kept = {k: float(v) for k, v in values.items() if not math.isnan(v)}
    if not kept:
        summary.empty_rows += 1
        return None
    for name in [k for k, v in kept.items() if not _valid_alone(k, v)]:
        summary.rejected[name] += 1
        del kept[name]
    if "sbp_mmhg" in kept and "dbp_mmhg" in kept and kept["dbp_mmhg"] >= kept["sbp_mmhg"]:
        for name in ("sbp_mmhg", "dbp_mmhg"):
            summary.rejected[name] += 1
            del kept[name]
    if not kept:
        summary.skipped_rows += 1
        return None
    return _Pending(ts_ms, "vitals", "", dict(kept))


def _messages(device_id: str, pending: Iterable[_Pending], summary: ImportSummary):
    """Order one device's messages, number them, validate them; yields (ts_ms, key, value)."""
    key = device_id.encode()
    ordered = sorted(pending, key=lambda p: (p.ts_ms, p.kind, p.signal))
    for seq, p in enumerate(ordered):
        payload = {"kind": p.kind, "device_id": device_id, "ts_ms": p.ts_ms, "seq": seq, **p.fields}
        message = TELEMETRY.validate_python(payload)
        summary.messages[f"{p.kind}:{p.signal}" if p.signal else p.kind] += 1
        yield p.ts_ms, key, message.model_dump_json(exclude_none=True).encode()
    summary.records += 1


def _device_id(prefix: str, name: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9._:-]', '_', name)}"


# ---- readers, one per source: record path -> (device id, pending messages) ----


def _read_wfdb(record: Path, summary: ImportSummary) -> tuple[str, list[_Pending]]:
    import wfdb  # imported here: only this importer needs it

    rec = wfdb.rdrecord(str(record), channels=[0])
    units = rec.units[0] if rec.units else None
    pending = list(_waveforms(rec.p_signal[:, 0], float(rec.fs), "ecg", units, summary))
    prefix = re.sub(r"[^a-z0-9]", "", record.resolve().parent.name.lower()) or "wfdb"
    return _device_id(prefix, record.name), pending


def _read_bidmc(record: Path, summary: ImportSummary) -> tuple[str, list[_Pending]]:
    """``record`` is the common prefix, e.g. ``.../bidmc_01``; Signals and Numerics are read if present."""
    pending: list[_Pending] = []
    signals = next((p for p in _siblings(record, "_Signals.csv")), None)
    if signals is not None:
        columns = read_csv_columns(signals)
        for column, signal in BIDMC_WAVEFORMS.items():
            if column in columns:
                pending += _waveforms(columns[column], 125.0, signal, None, summary)
            else:
                log.warning("%s has no %s column: no %s chunks", signals.name, column, signal)
    numerics = next((p for p in _siblings(record, "_Numerics.csv")), None)
    if numerics is not None:
        columns = read_csv_columns(numerics)
        for i, t_s in enumerate(columns["Time [s]"]):
            values = {f: columns[c][i] for c, f in BIDMC_NUMERICS.items() if c in columns}
            vitals = _vitals(BASE_TS_MS + round(t_s * 1000), values, summary)
            pending += [vitals] if vitals else []
    return _device_id("bidmc", record.name.removeprefix("bidmc_")), pending


def _siblings(record: Path, suffix: str) -> Iterator[Path]:
    for ext in ("", ".gz"):
        candidate = record.with_name(record.name + suffix + ext)
        if candidate.exists():
            yield candidate


def _read_cinc2017(record: Path, summary: ImportSummary) -> tuple[str, list[_Pending]]:
    from scipy.io import loadmat

    mv = loadmat(str(record))["val"][0].astype(np.float64) / 1000.0  # 1000 ADC units per mV (header)
    return _device_id("cinc2017", record.stem), list(_waveforms(mv, 300.0, "ecg", "mV", summary))


def _read_sepsis2019(record: Path, summary: ImportSummary) -> tuple[str, list[_Pending]]:
    pending: list[_Pending] = []
    with record.open(newline="") as fh:
        for hour, row in enumerate(csv.DictReader(fh, delimiter="|")):
            values = {f: float(row[c]) for c, f in SEPSIS_VITALS.items()}
            vitals = _vitals(BASE_TS_MS + hour * 3_600_000, values, summary)
            pending += [vitals] if vitals else []
    return _device_id("sepsis", record.stem), pending


def _bidmc_records(folder: Path) -> list[Path]:
    names = {m.group(1) for p in folder.iterdir() if (m := re.match(r"(bidmc_\d+)_(Signals|Numerics)", p.name))}
    return [folder / n for n in sorted(names)]


_Reader = Callable[[Path, ImportSummary], tuple[str, list[_Pending]]]
READERS: dict[str, tuple[_Reader, Callable[[Path], list[Path]], Callable[[Path], Path]]] = {
    # kind: (reader, records of a folder, record of a single path)
    "wfdb": (
        _read_wfdb,
        lambda d: sorted(p.with_suffix("") for p in d.glob("*.hea")),
        lambda p: p.with_suffix("") if p.suffix in (".hea", ".dat", ".atr") else p,
    ),
    "bidmc": (
        _read_bidmc,
        _bidmc_records,
        lambda p: p.with_name(re.sub(r"_[A-Za-z]+\.csv(\.gz)?$", "", p.name)),
    ),
    "cinc2017": (_read_cinc2017, lambda d: sorted(d.rglob("*.mat")), lambda p: p.with_suffix(".mat")),
    "sepsis2019": (_read_sepsis2019, lambda d: sorted(d.rglob("*.psv")), lambda p: p),
}


def record_paths(kind: str, path: Path) -> list[Path]:
    """The records ``import_records`` reads for ``path`` (one record, or every record of a folder)."""
    if kind not in READERS:
        raise ValueError(f"unknown importer {kind!r}; valid: {', '.join(READERS)}")
    _, folder_records, single = READERS[kind]
    return folder_records(path) if path.is_dir() else [single(path)]


def _timed_records(kind: str, path: Path, summary: ImportSummary) -> Iterator[Iterator[tuple[int, bytes, bytes]]]:
    records = record_paths(kind, path)
    reader = READERS[kind][0]
    for record in track(records, desc=f"import {kind}"):
        device_id, pending = reader(record, summary)
        log.debug("read %s as %s: %d messages", record, device_id, len(pending))
        yield _messages(device_id, pending, summary)


def import_records(kind: str, path: Path, summary: ImportSummary | None = None) -> Iterator[tuple[str, bytes]]:
    """(key, value) telemetry messages of every record under ``path``, record after record."""
    summary = ImportSummary() if summary is None else summary
    for messages in _timed_records(kind, path, summary):
        for _, key, value in messages:
            yield key.decode(), value


def write_session(
    kind: str, path: Path, out_path: Path, *, topic: str | None = None, interleave: bool = True
) -> ImportSummary:
    """Import ``path`` into the session ``out_path``.

    ``interleave`` (the default) orders the messages of all records by ts_ms, so that a replay plays
    the records as simultaneous devices; it holds the whole import in memory (about 250 MB for the 11
    MIT-BIH records). Without it, records are written one after the other, streaming.
    """
    summary = ImportSummary()
    topic = topic or Settings().topics.telemetry
    per_record = _timed_records(kind, path, summary)
    stream: Iterable[tuple[int, bytes, bytes]] = (
        heapq.merge(*[list(m) for m in per_record], key=lambda t: t[0])
        if interleave
        else (m for messages in per_record for m in messages)
    )
    with SessionWriter(out_path, source=f"import:{kind}:{path.name}", created_ms=BASE_TS_MS) as writer:
        for ts_ms, key, value in stream:
            writer.write(SessionRecord(topic=topic, key=key, value=value, timestamp_ms=ts_ms))
    return summary
