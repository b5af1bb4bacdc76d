"""Throughput of stages 2-3 on one core: windows per second and microseconds per 1-second chunk.

Runs real recordings (BIDMC PPG at 125 Hz, MIT-BIH record 100 ECG at 360 Hz) through one
DeviceSignalProcessor in 1-second chunks; messages are built before timing (validation is stage 1's cost).
Writes bench/results/signals.json with the machine noted. Usage: ``PYTHONPATH=. python bench/signals.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from streamer.config import Settings, recordings_dir
from streamer.contracts import WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.signals.device import DeviceSignalProcessor

RESULTS = Path(__file__).resolve().parent / "results" / "signals.json"


def _messages(signal: str, x: np.ndarray, fs_hz: float) -> list[WaveformMessage]:
    step = round(fs_hz)
    return [
        WaveformMessage(
            device_id="bench",
            ts_ms=EPOCH_MS + round(i * 1000 / fs_hz),
            seq=k,
            signal=signal,
            fs_hz=fs_hz,
            samples=list(x[i : i + step]),
        )
        for k, i in enumerate(range(0, len(x) - step + 1, step))
    ]


def _one_run(msgs: list[WaveformMessage]) -> tuple[float, int]:
    proc = DeviceSignalProcessor("bench", Settings())
    start = time.perf_counter()
    n_windows = sum(len(proc.on_message(m).windows) for m in msgs) + len(proc.flush().windows)
    return time.perf_counter() - start, n_windows


def measure(name: str, msgs: list[WaveformMessage], runs: int) -> dict[str, Any]:
    timings = [_one_run(msgs) for _ in range(runs)]
    seconds = statistics.median(t for t, _ in timings)
    n_windows = timings[0][1]
    return {
        "case": name,
        "chunks": len(msgs),
        "windows": n_windows,
        "runs": runs,
        "median_s": seconds,
        "windows_per_s_per_core": n_windows / seconds,
        "us_per_1s_chunk": 1e6 * seconds / len(msgs),
        "realtime_factor": len(msgs) / seconds,  # seconds of signal processed per second, one device
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "note": "one process, one core; the machine was shared with other work while measuring",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=300, help="seconds of each recording to use")
    args = parser.parse_args()
    data = recordings_dir()
    ppg = load_bidmc(data / "bidmc", "bidmc_01")["ppg"][: args.seconds * 125]
    ecg = wfdb.rdrecord(str(data / "mitdb" / "100"), channels=[0], sampto=args.seconds * 360).p_signal[:, 0]
    cases = [
        measure("ppg_125hz", _messages("ppg", ppg, 125.0), args.runs),
        measure("ecg_360hz", _messages("ecg", ecg, 360.0), args.runs),
    ]
    result = {"machine": machine(), "cases": cases}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
