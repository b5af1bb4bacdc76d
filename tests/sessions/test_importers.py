"""Importers on real recordings: message counts from record lengths, chunking, validation, determinism."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from streamer.config import recordings_dir
from streamer.contracts import TELEMETRY
from streamer.sessions.format import read_session
from streamer.sessions.importers import BASE_TS_MS, ImportSummary, import_records, write_session

pytestmark = pytest.mark.unit

DATA = recordings_dir()
MITDB_203 = DATA / "mitdb" / "203"
BIDMC_01 = DATA / "bidmc" / "bidmc_01_Signals.csv.gz"
CINC_A00007 = DATA / "challenge2017_af" / "A00007.mat"
SEPSIS_P100001 = DATA / "challenge2019_sepsis" / "training_setB" / "p100001.psv"


def _messages(kind: str, path: Path, summary: ImportSummary | None = None) -> list[tuple[str, dict]]:
    out = []
    for key, value in import_records(kind, path, summary):
        TELEMETRY.validate_json(value)  # every message must pass the wire contract
        out.append((key, json.loads(value)))
    return out


def _header_length(hea: Path) -> tuple[float, int]:
    """(fs_hz, samples) from line 1 of a WFDB header: ``name nsig fs nsamp ...``."""
    fields = hea.read_text().split()
    return float(fields[2]), int(fields[3])


def _assert_device_order(msgs: list[tuple[str, dict]]) -> None:
    seqs = [m["seq"] for _, m in msgs]
    assert seqs == list(range(len(msgs)))
    order = [(m["ts_ms"], m["kind"], m.get("signal", "")) for _, m in msgs]
    assert order == sorted(order)


def _assert_chunks(msgs: list[dict], fs_hz: float, n_samples: int) -> None:
    per_chunk = round(fs_hz)
    assert len(msgs) == math.ceil(n_samples / per_chunk)
    assert all(len(m["samples"]) == per_chunk for m in msgs[:-1])  # exactly 1 s
    assert len(msgs[-1]["samples"]) == n_samples - per_chunk * (len(msgs) - 1)
    assert [m["ts_ms"] - BASE_TS_MS for m in msgs] == [1000 * i for i in range(len(msgs))]


def test_mitdb_record_is_one_second_ecg_chunks_in_mv() -> None:
    import wfdb

    fs_hz, n = _header_length(MITDB_203.with_suffix(".hea"))
    msgs = _messages("wfdb", MITDB_203)
    assert _messages("wfdb", MITDB_203.with_suffix(".hea")) == msgs  # a header path names the record too
    assert {k for k, _ in msgs} == {"mitdb-203"}
    _assert_device_order(msgs)
    _assert_chunks([m for _, m in msgs], fs_hz, n)
    assert {(m["signal"], m["fs_hz"], m["units"]) for _, m in msgs} == {("ecg", 360.0, "mV")}
    # The samples are channel 0 (MLII) in mV, as the WFDB library reads them.
    mv = wfdb.rdrecord(str(MITDB_203), channels=[0]).p_signal[:, 0]
    np.testing.assert_array_equal(np.concatenate([m["samples"] for _, m in msgs]), mv)


def test_cinc2017_record_is_val_over_1000() -> None:
    from scipy.io import loadmat

    fs_hz, n = _header_length(CINC_A00007.with_suffix(".hea"))
    msgs = _messages("cinc2017", CINC_A00007)
    assert {k for k, _ in msgs} == {"cinc2017-A00007"}
    _assert_device_order(msgs)
    _assert_chunks([m for _, m in msgs], fs_hz, n)
    val = loadmat(str(CINC_A00007))["val"][0]
    np.testing.assert_allclose(np.concatenate([m["samples"] for _, m in msgs]), val / 1000.0, rtol=0, atol=1e-12)


def test_bidmc_record_waveforms_and_numerics() -> None:
    with gzip.open(BIDMC_01, "rt") as fh:
        n_rows = sum(1 for _ in fh) - 1
    numerics = list(csv.reader((DATA / "bidmc" / "bidmc_01_Numerics.csv").open(), skipinitialspace=True))[1:]
    nan_cells = sum(1 for row in numerics for c in (row[1], row[3], row[4]) if c == "NaN")
    msgs = _messages("bidmc", BIDMC_01)
    assert {k for k, _ in msgs} == {"bidmc-01"}
    _assert_device_order(msgs)
    for signal in ("ppg", "ecg", "resp"):
        chunk = [m for _, m in msgs if m.get("signal") == signal]
        _assert_chunks(chunk, 125.0, n_rows)
        assert "units" not in chunk[0]  # BIDMC waveforms are normalised, without units
    vitals = [m for _, m in msgs if m["kind"] == "vitals"]
    assert len(vitals) == len(numerics)  # no row of bidmc_01 is all NaN
    n_values = sum(len(set(v) & {"heart_rate_bpm", "spo2_pct", "resp_rate_bpm"}) for v in vitals)
    assert n_values == 3 * len(numerics) - nan_cells
    assert vitals[10]["heart_rate_bpm"] == float(numerics[10][1])
    assert vitals[10]["ts_ms"] == BASE_TS_MS + 1000 * int(numerics[10][0])


def test_sepsis_one_message_per_hour_with_a_vital() -> None:
    rows = list(csv.DictReader(SEPSIS_P100001.open(), delimiter="|"))
    vital_cols = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp")
    hours = [i for i, r in enumerate(rows) if any(r[c] != "NaN" for c in vital_cols)]
    summary = ImportSummary()
    msgs = _messages("sepsis2019", SEPSIS_P100001, summary)
    assert summary.empty_rows == len(rows) - len(hours)
    assert {k for k, _ in msgs} == {"sepsis-p100001"}
    _assert_device_order(msgs)
    assert [m["ts_ms"] for _, m in msgs] == [BASE_TS_MS + 3_600_000 * h for h in hours]
    first = rows[hours[0]]
    assert msgs[0][1]["spo2_pct"] == float(first["O2Sat"]) and msgs[0][1]["sbp_mmhg"] == float(first["SBP"])


def test_rejected_values_are_counted_not_silently_dropped(tmp_path: Path) -> None:
    header = "HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|SepsisLabel"
    rows = [
        "0|97|37|120|90|80|16|NaN|0",  # HR 0: rejected, the rest kept
        "80|NaN|NaN|100|80|100|NaN|NaN|0",  # DBP not below SBP: both rejected
        "0|0|NaN|NaN|NaN|NaN|NaN|NaN|0",  # nothing valid left: row skipped
        "NaN|NaN|NaN|NaN|NaN|NaN|NaN|35|0",  # no vital at all: no message, not a rejection
    ]
    psv = tmp_path / "p000001.psv"
    psv.write_text("\n".join([header, *rows]) + "\n")
    summary = ImportSummary()
    msgs = [m for _, m in _messages("sepsis2019", psv, summary)]
    assert [m["ts_ms"] - BASE_TS_MS for m in msgs] == [0, 3_600_000]
    assert "heart_rate_bpm" not in msgs[0] and msgs[0]["spo2_pct"] == 97.0
    assert msgs[1] == {**msgs[1], "heart_rate_bpm": 80.0, "map_mmhg": 80.0} and "sbp_mmhg" not in msgs[1]
    assert summary.rejected == {"heart_rate_bpm": 2, "spo2_pct": 1, "sbp_mmhg": 1, "dbp_mmhg": 1}
    assert (summary.skipped_rows, summary.empty_rows) == (1, 1)
    assert summary.records == 1


def test_folder_imports_every_record_and_is_deterministic(tmp_path: Path) -> None:
    folder = tmp_path / "cinc"
    folder.mkdir()
    names = ["A00007", "A00015", "A00016"]
    for name in names:
        for ext in (".mat", ".hea"):
            (folder / f"{name}{ext}").symlink_to((DATA / "challenge2017_af" / f"{name}{ext}").resolve())
    expected = sum(math.ceil(_header_length(folder / f"{n}.hea")[1] / 300) for n in names)
    out_a, out_b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    summary = write_session("cinc2017", folder, out_a, topic="t", interleave=False)
    write_session("cinc2017", folder, out_b, topic="t", interleave=False)
    assert out_a.read_bytes() == out_b.read_bytes()
    assert summary.records == 3 and summary.messages == {"waveform:ecg": expected}
    records = list(read_session(out_a))
    assert len(records) == expected
    assert [r.key.decode() for r in records] == sorted(r.key.decode() for r in records)  # record after record
    assert all(r.topic == "t" and r.timestamp_ms == json.loads(r.value)["ts_ms"] for r in records)
    merged = list(read_session(_interleaved(folder, tmp_path)))
    assert sorted(r.value for r in merged) == sorted(r.value for r in records)
    assert [r.timestamp_ms for r in merged] == sorted(r.timestamp_ms for r in merged)


def _interleaved(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "merged.jsonl.gz"
    write_session("cinc2017", folder, out, topic="t")  # interleaved by default
    return out


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: wfdb, bidmc, cinc2017, sepsis2019"):
        list(import_records("edf", DATA))


def test_cli_import_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamer.cli.main import main

    out = tmp_path / "s.jsonl.gz"
    assert main(["import", "cinc2017", str(CINC_A00007), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "records: 1" in printed and "waveform:ecg: 30" in printed
    assert sum(1 for _ in read_session(out)) == 30
