"""``vitalstream eval signals``: the streaming signal path measured on real recordings.

Data (read-only, layout as ``../shared/data``; cite when reporting):
MIT-BIH Arrhythmia Database: Moody GB, Mark RG. IEEE Eng Med Biol 20(3):45-50 (2001).
BIDMC PPG and Respiration Dataset: Pimentel MAF et al. IEEE TBME 64(8):1914-1923 (2017).
PhysioNet: Goldberger AL et al. Circulation 101(23):e215-e220 (2000).
HeartPy example data: van Gent P et al. Transportation Research Part F 66:368-378 (2019).

Every figure comes from the causal, chunked path: 1-second chunks through :class:`DeviceSignalProcessor`
(BIDMC, HeartPy) or through the same streaming R-peak detector (MIT-BIH).
"""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamer.config import Settings
from streamer.contracts import WaveformMessage
from streamer.progress import track
from streamer.records import FeatureWindow
from streamer.sessions.bidmc import read_csv_columns
from streamer.signals.device import DeviceSignalProcessor
from streamer.signals.ecg_beats import ecg_r_peaks
from streamer.signals.ppg_beats import ppg_peaks

CITATIONS = (
    "MIT-BIH: Moody & Mark, IEEE EMB Mag 2001; BIDMC: Pimentel et al., IEEE TBME 2017; "
    "PhysioNet: Goldberger et al., Circulation 2000; HeartPy: van Gent et al., TRF 2019"
)
# Reference beat labels (not rhythm, noise or artefact marks such as + ~ | x).
MITDB_BEATS = frozenset("NLRBAaJSVrFejnE/fQ?")
MATCH_S = 0.15  # AAMI EC57-style match window
STARTUP_S = 10.0  # detector start-up (2 s learning) excluded from the beat figures
EPOCH_MS = 1_700_000_000_000  # a grid-aligned device time for sample 0


# -- loading ----------------------------------------------------------------------------------------
def load_bidmc(folder: Path, record: str) -> dict[str, Any]:
    """Signals (125 Hz), monitor numerics (1 Hz) and ann1 breath sample indices of one BIDMC record."""
    sig = read_csv_columns(folder / f"{record}_Signals.csv.gz")
    num = read_csv_columns(folder / f"{record}_Numerics.csv")
    breaths = next(iter(read_csv_columns(folder / f"{record}_Breaths.csv").values()))  # ann1, the first column
    return {
        "fs_hz": 125.0,
        "ppg": sig["PLETH"],
        "ecg": sig["II"],
        "resp": sig["RESP"],
        "hr_bpm": num["HR"],
        "pulse_bpm": num["PULSE"],
        "breaths": breaths[np.isfinite(breaths)].astype(np.int64),
    }


def stream_signals(
    signals: dict[str, np.ndarray], fs_hz: float, settings: Settings | None = None, chunk_s: float = 1.0
) -> list[FeatureWindow]:
    """Feed whole recordings through a processor in ``chunk_s`` chunks, signals interleaved; then flush."""
    proc = DeviceSignalProcessor("eval-device", settings or Settings())
    step = round(chunk_s * fs_hz)
    length = min(len(x) for x in signals.values())
    windows: list[FeatureWindow] = []
    seq = 0
    for start in range(0, length, step):
        ts_ms = EPOCH_MS + round(start * 1000 / fs_hz)
        for name, x in signals.items():
            chunk = x[start : start + step]
            msg = WaveformMessage(
                device_id="eval-device",
                ts_ms=ts_ms,
                seq=seq,
                signal=name,  # type: ignore[arg-type]  # ecg | ppg | resp by construction
                fs_hz=fs_hz,
                samples=chunk.tolist(),
            )
            seq += 1
            windows += proc.on_message(msg).windows
    return windows + list(proc.flush().windows)


# -- scoring ----------------------------------------------------------------------------------------
def match_beats(ref: np.ndarray, found: np.ndarray, tol: float) -> tuple[int, int, int]:
    """Greedy one-to-one matching within ``tol`` samples: (true pos., false neg., false pos.)."""
    found = np.sort(found)
    used = np.zeros(len(found), dtype=bool)
    tp = 0
    for at, r in zip(np.searchsorted(found, ref), ref, strict=True):
        near = [c for c in (at - 1, at) if 0 <= c < len(found) and not used[c] and abs(found[c] - r) <= tol]
        if near:
            used[min(near, key=lambda c: abs(found[c] - r))] = True
            tp += 1
    return tp, len(ref) - tp, int(len(found) - used.sum())


def evaluate_mitdb_record(folder: Path, record: str) -> dict[str, Any]:
    """R peaks of channel 0 (MLII) vs reference beat labels; the first ``STARTUP_S`` seconds excluded."""
    import wfdb  # only the evaluation reads WFDB files

    rec = wfdb.rdrecord(str(folder / record), channels=[0])
    ann = wfdb.rdann(str(folder / record), "atr")
    fs = float(rec.fs)
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in MITDB_BEATS])
    found = ecg_r_peaks(rec.p_signal[:, 0], fs)
    start = STARTUP_S * fs
    tp, fn, fp = match_beats(ref[ref >= start], found[found >= start], MATCH_S * fs)
    hr_err, n_windows = _ecg_window_rates(rec.p_signal[:, 0], fs, ref)
    return {
        "dataset": "mitdb",
        "record": record,
        "tp": tp,
        "fn": fn,
        "fp": fp,
        **_se_ppv(tp, fn, fp),
        "ecg_windows": n_windows,
        "ecg_hr_abs_err_bpm": hr_err,
    }


def _ecg_window_rates(x: np.ndarray, fs: float, ref: np.ndarray) -> tuple[list[float], int]:
    """Processor ECG windows (usable ones) vs the rate of the reference beats in the same window."""
    errors, n = [], 0
    for w in stream_signals({"ecg": x}, fs):
        if w.signal != "ecg":
            continue
        start, end = _window_s(w)
        inside = ref[(ref >= start * fs) & (ref < end * fs)]
        if start < STARTUP_S or len(inside) < 3 or end > len(x) / fs:
            continue
        n += 1
        rate = w.features.get("heart_rate_bpm")
        if w.usable and rate is not None:
            errors.append(abs(rate - 60.0 * fs / float(np.mean(np.diff(inside)))))
    return errors, n


def _se_ppv(tp: int, fn: int, fp: int) -> dict[str, float]:
    return {"sensitivity_pct": 100.0 * tp / max(tp + fn, 1), "ppv_pct": 100.0 * tp / max(tp + fp, 1)}


def _window_s(w: FeatureWindow) -> tuple[float, float]:
    return (w.window_start_ms - EPOCH_MS) / 1000.0, (w.window_end_ms - EPOCH_MS) / 1000.0


def _ref_rr_bpm(breaths_s: np.ndarray, start_s: float, end_s: float) -> float | None:
    inside = breaths_s[(breaths_s >= start_s) & (breaths_s < end_s)]
    return 60.0 / float(np.mean(np.diff(inside))) if len(inside) >= 3 else None


def evaluate_bidmc_record(folder: Path, record: str, settings: Settings | None = None) -> dict[str, Any]:
    """PPG pulse rate vs monitor HR, and respiratory rate (PPG, impedance) vs annotated breaths (ann1)."""
    settings = settings or Settings()
    d = load_bidmc(folder, record)
    windows = stream_signals({"ppg": d["ppg"], "resp": d["resp"]}, d["fs_hz"], settings)
    breaths_s = d["breaths"] / d["fs_hz"]
    hr_err, n_ppg, rr_ppg_err, rr_imp_err, n_resp, n_ppg_resp = [], 0, [], [], 0, 0
    for w in windows:
        start, end = _window_s(w)
        ref_rr = _ref_rr_bpm(breaths_s, end - settings.resp_window_s, end)
        if w.signal == "ppg" and end <= len(d["hr_bpm"]) - 1:
            n_ppg += 1
            monitor = d["hr_bpm"][int(start) : int(end)]
            monitor = monitor[np.isfinite(monitor)]
            rate = w.features.get("pulse_rate_bpm")
            if w.usable and rate is not None and len(monitor):
                hr_err.append(abs(rate - float(np.mean(monitor))))
            # Resp coverage counts good PPG windows with a full resp window and a reference rate.
            full = end - settings.resp_window_s >= 0
            n_ppg_resp += bool(full and w.usable and ref_rr is not None)
            est = w.features.get("resp_rate_bpm_ppg")
            if est is not None and ref_rr is not None and full:
                rr_ppg_err.append(abs(est - ref_rr))
        elif w.signal == "resp" and end - start >= settings.resp_window_s and ref_rr is not None:
            n_resp += 1
            est = w.features.get("resp_rate_bpm")
            if est is not None:
                rr_imp_err.append(abs(est - ref_rr))
    return {
        "dataset": "bidmc",
        "record": record,
        "ppg_windows": n_ppg,
        "ppg_good_windows": len(hr_err),
        "ppg_hr_abs_err_bpm": hr_err,
        "resp_ppg_abs_err_bpm": rr_ppg_err,
        "resp_imp_abs_err_bpm": rr_imp_err,
        "resp_windows": n_resp,
        "ppg_resp_windows": n_ppg_resp,
    }


def load_heartpy(path: Path) -> tuple[np.ndarray, float]:
    """Samples and rate of a HeartPy example: ``data.csv`` 100 Hz; ``data2`` ms timer; ``data3`` datetimes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        lines = [ln.strip() for ln in fh if ln.strip()]
    if "," not in lines[0]:
        return np.array([float(v) for v in lines]), 100.0
    rows = [ln.split(",") for ln in lines[1:]]
    x = np.array([float(r[1]) for r in rows])
    if lines[0].startswith("timer"):
        t_ms = np.array([float(r[0]) for r in rows])
    else:  # quantised wall-clock stamps: only the mean interval is meaningful
        first, last = (datetime.fromisoformat(rows[k][0]) for k in (0, -1))
        t_ms = np.linspace(0.0, (last - first).total_seconds() * 1000.0, len(rows))
    return x, 1000.0 * (len(t_ms) - 1) / float(t_ms[-1] - t_ms[0])


def evaluate_heartpy_file(path: Path) -> dict[str, Any]:
    """Beats and median rate of a HeartPy example PPG (no reference: plausibility only, 40-180 bpm)."""
    x, fs = load_heartpy(path)
    windows = [w for w in stream_signals({"ppg": x}, fs) if w.signal == "ppg"]
    rates = [w.features["pulse_rate_bpm"] for w in windows if w.usable and w.features["pulse_rate_bpm"]]
    median = float(np.median(rates)) if rates else None
    return {
        "dataset": "heartpy",
        "record": path.name,
        "fs_hz": round(fs, 3),
        "beats": len(ppg_peaks(x, fs)),
        "windows": len(windows),
        "good_windows": len(rates),
        "median_rate_bpm": median,
        "plausible": median is not None and 40.0 <= median <= 180.0,
    }


# -- aggregate and command line ---------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures: beats summed over MIT-BIH records; errors pooled over BIDMC windows."""
    mit = [r for r in records if r["dataset"] == "mitdb"]
    bid = [r for r in records if r["dataset"] == "bidmc"]
    hp = [r for r in records if r["dataset"] == "heartpy"]
    tp, fn, fp = (sum(r[k] for r in mit) for k in ("tp", "fn", "fp"))
    hr = [e for r in bid for e in r["ppg_hr_abs_err_bpm"]]
    ecg_hr = [e for r in mit for e in r["ecg_hr_abs_err_bpm"]]
    n_ecg = sum(r["ecg_windows"] for r in mit)
    rr_ppg = [e for r in bid for e in r["resp_ppg_abs_err_bpm"]]
    rr_imp = [e for r in bid for e in r["resp_imp_abs_err_bpm"]]
    n_ppg = sum(r["ppg_windows"] for r in bid)
    n_resp = sum(r["resp_windows"] for r in bid)
    n_ppg_resp = sum(r["ppg_resp_windows"] for r in bid)
    se_ppv = _se_ppv(tp, fn, fp) if mit else {"sensitivity_pct": None, "ppv_pct": None}
    return {
        "qrs_sensitivity_pct": se_ppv["sensitivity_pct"],
        "qrs_ppv_pct": se_ppv["ppv_pct"],
        "qrs_tp": tp,
        "qrs_fn": fn,
        "qrs_fp": fp,
        "ecg_hr_mae_bpm": _mean(ecg_hr),
        "ecg_hr_coverage_pct": 100.0 * len(ecg_hr) / n_ecg if n_ecg else None,
        "ppg_hr_mae_bpm": _mean(hr),
        "ppg_hr_coverage_pct": 100.0 * len(hr) / n_ppg if n_ppg else None,
        "resp_rate_mae_bpm_ppg": _mean(rr_ppg),
        "resp_rate_coverage_pct_ppg": 100.0 * len(rr_ppg) / n_ppg_resp if n_ppg_resp else None,
        "resp_rate_mae_bpm_impedance": _mean(rr_imp),
        "resp_rate_coverage_pct_impedance": 100.0 * len(rr_imp) / n_resp if n_resp else None,
        "heartpy_all_plausible": all(r["plausible"] for r in hp) if hp else None,
        "n_mitdb_records": len(mit),
        "n_bidmc_records": len(bid),
        "n_heartpy_files": len(hp),
        "startup_excluded_s": STARTUP_S,
        "match_window_s": MATCH_S,
        "citations": CITATIONS,
    }


def _records(folder: Path) -> list[str]:
    listing = folder / "RECORDS"
    return listing.read_text().split() if listing.exists() else []


def evaluate(mitdb: Path | None, bidmc: Path | None, heartpy: Path | None) -> dict[str, Any]:
    """Every record found in the given folders, then the pooled figures."""
    records = [evaluate_mitdb_record(mitdb, r) for r in track(_records(mitdb), desc="mitdb")] if mitdb else []
    records += [evaluate_bidmc_record(bidmc, r) for r in track(_records(bidmc), desc="bidmc")] if bidmc else []
    if heartpy is not None:
        files = sorted(p for p in heartpy.iterdir() if p.name.startswith("data") and ".csv" in p.name)
        records += [evaluate_heartpy_file(p) for p in track(files, desc="heartpy")]
    return {"records": [_summary(r) for r in records], "aggregate": aggregate(records)}


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    """Per-record row: each list of window errors becomes its mean and its count."""
    out: dict[str, Any] = {}
    for key, value in r.items():
        if isinstance(value, list):
            out[key.replace("abs_err", "mae")] = _mean(value)
            out[key.replace("abs_err_bpm", "n")] = len(value)
        else:
            out[key] = value
    return out
