"""Real training data: Challenge 2019 vitals, Challenge 2017 and MIT-BIH RR sequences, seeded splits."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.features import PSV_COLUMNS
from streamer.config import recordings_dir
from streamer.progress import track
from streamer.sessions.bidmc import read_csv_columns

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
AF_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
# MIT-BIH rhythm labels folded into the Challenge 2017 classes (atrial flutter counts with AF).
MITDB_RHYTHM_CLASS = {"(AFIB": "A", "(AFL": "A", "(N": "N"}
# Held out by patient: 201 and 202 are the same subject (data README), so both stay out of training.
MITDB_TEST_RECORDS = ("105", "201", "202", "208")


def data_dir() -> Path:
    """The recordings folder (``streamer.config.recordings_dir``)."""
    return recordings_dir()


def files_sha256(paths: Iterable[Path], root: Path) -> str:
    """SHA-256 over the sorted ``relative-path file-sha256`` lines of the training files."""
    lines = []
    for p in sorted(paths):
        lines.append(f"{p.relative_to(root).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def split_ids(
    ids: Sequence[str], strata: Sequence[str], seed: int, fractions: tuple[float, float] = (0.6, 0.2)
) -> dict[str, list[str]]:
    """Stratified seeded split into train / val / test (the rest)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for stratum in sorted(set(strata)):
        members = sorted(i for i, s in zip(ids, strata, strict=True) if s == stratum)
        rng.shuffle(members)
        n_train, n_val = round(fractions[0] * len(members)), round(fractions[1] * len(members))
        out["train"] += members[:n_train]
        out["val"] += members[n_train : n_train + n_val]
        out["test"] += members[n_train + n_val :]
    return {k: sorted(v) for k, v in out.items()}


@dataclass(frozen=True)
class Patient:
    """One Challenge 2019 ICU stay: hourly raw vitals and the hourly SepsisLabel."""

    name: str
    vitals: np.ndarray  # (T, 7) raw, NaN where not measured, columns as features.VITALS
    labels: np.ndarray  # (T,) 0/1


def sepsis_files(folder: Path) -> list[Path]:
    """The files listed in ``index.csv``, or every ``*.psv`` below the folder where there is no index."""
    if not (folder / "index.csv").exists():
        return sorted(folder.rglob("*.psv"))
    with open(folder / "index.csv", newline="") as f:
        return [folder / row["file"] for row in csv.DictReader(f)]


def load_sepsis(folder: Path, limit: int | None = None) -> list[Patient]:
    """Every patient of ``sepsis_files`` (or the first ``limit``), in that order."""
    files = sepsis_files(folder)[:limit]
    patients = []
    for path in track(files, desc="sepsis2019"):
        with open(path) as f:
            header = f.readline().strip().split("|")
        table = np.loadtxt(path, delimiter="|", skiprows=1, ndmin=2)
        cols = [header.index(c) for c in PSV_COLUMNS]
        patients.append(Patient(path.stem, table[:, cols], table[:, header.index("SepsisLabel")].astype(int)))
    log.info("loaded %d patients from %s", len(patients), folder)
    return patients


@dataclass(frozen=True)
class RRSequence:
    """RR intervals (ms) from our beat detector with one rhythm class (index into AF_CLASSES)."""

    name: str
    rr_ms: np.ndarray  # (T,)
    label: int
    beat_labels: np.ndarray | None = None  # (T,) rhythm class of each interval, where annotated
    morph: np.ndarray | None = None  # (T, N_MORPH) ECG morphology of the beat ending each interval


def ecg_beats_and_morphology(ecg: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """R peaks of a whole recording and the morphology of each beat but the first, as the stream sees them.

    The ECG channel filters causally from the first sample and reads morphology off that filtered
    signal, so this does the same over the whole recording. Shapes (P,), (P - 1, N_MORPH).
    """
    from streamer.features.morphology import beat_morphology
    from streamer.signals.ecg_beats import ecg_r_peaks
    from streamer.signals.filters import CausalFilter

    peaks = np.asarray(ecg_r_peaks(ecg, fs_hz), dtype=np.int64)
    filt = CausalFilter.design("ecg", fs_hz, "standard").process(ecg)
    prev = int(peaks[0]) if len(peaks) else None
    return peaks, beat_morphology(filt, peaks[1:], fs_hz, prev_peak=prev)


def rr_from_peaks(peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    return np.diff(np.asarray(peaks, dtype=np.float64)) * 1000.0 / fs_hz


def challenge2017_labels(folder: Path) -> dict[str, str]:
    with open(folder / "REFERENCE.csv", newline="") as f:
        return {row[0]: row[1] for row in csv.reader(f) if row}


def load_challenge2017(folder: Path, names: Sequence[str] | None = None) -> list[RRSequence]:
    """RR sequences and beat morphology of the named recordings (all in REFERENCE.csv by default)."""
    from scipy.io import loadmat

    labels = challenge2017_labels(folder)
    out = []
    for name in track(names if names is not None else sorted(labels), desc="cinc2017"):
        ecg_mv = loadmat(folder / f"{name}.mat")["val"][0].astype(np.float64) / 1000.0
        peaks, morph = ecg_beats_and_morphology(ecg_mv, 300.0)
        out.append(RRSequence(name, rr_from_peaks(peaks, 300.0), AF_CLASSES.index(labels[name]), morph=morph))
    return out


def load_mitdb(folder: Path, records: Sequence[str]) -> list[RRSequence]:
    """Whole MIT-BIH records (lead MLII) as RR sequences with each interval's annotated rhythm class."""
    import wfdb

    out = []
    for rec in track(records, desc="mitdb"):
        record = wfdb.rdrecord(str(folder / rec), channels=[0])
        ann = wfdb.rdann(str(folder / rec), "atr")
        fs_hz = float(record.fs)
        peaks, morph = ecg_beats_and_morphology(record.p_signal[:, 0].astype(np.float64), fs_hz)
        rhythm = _rhythm_at(peaks[1:], ann)  # class of the beat that ends each interval
        label = int(np.bincount(rhythm, minlength=len(AF_CLASSES)).argmax())
        out.append(RRSequence(f"mitdb{rec}", rr_from_peaks(peaks, fs_hz), label, rhythm, morph))
    return out


def _rhythm_at(samples: np.ndarray, ann) -> np.ndarray:
    """Class index of the rhythm in force at each sample, from the ``+`` annotations' aux text."""
    starts, classes = [0], [AF_CLASSES.index("N")]
    for sample, symbol, aux in zip(ann.sample, ann.symbol, ann.aux_note, strict=True):
        if symbol == "+":
            starts.append(int(sample))
            classes.append(AF_CLASSES.index(MITDB_RHYTHM_CLASS.get(aux.strip("\x00 "), "O")))
    idx = np.searchsorted(np.asarray(starts), samples, side="right") - 1
    return np.asarray(classes)[idx]


def load_bidmc_minutes(folder: Path) -> list[np.ndarray]:
    """BIDMC 1 Hz monitor numerics as per-minute medians in VITALS order (HR, SpO2, RESP; rest NaN)."""
    from models.features import VITALS

    columns = {"heart_rate_bpm": "HR", "spo2_pct": "SpO2", "resp_rate_bpm": "RESP"}
    out = []
    for rec in (folder / "RECORDS").read_text().split():
        table = read_csv_columns(folder / f"{rec}_Numerics.csv")  # 481 rows, NaN where missing
        minutes = np.full((len(table["HR"]) // 60, len(VITALS)), np.nan)
        for j, name in enumerate(VITALS):
            if name in columns:
                col = table[columns[name]][: len(minutes) * 60].reshape(len(minutes), 60)
                ok = ~np.all(np.isnan(col), axis=1)
                minutes[ok, j] = np.nanmedian(col[ok], axis=1)
        out.append(minutes)
    return out
