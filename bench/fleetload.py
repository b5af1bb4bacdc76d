"""Fleet benchmark parts: real-time wearables from BIDMC recordings, and what is read off the broker and the worker.

Each simulated wearable sends, every second, a 1-s 125 Hz PPG chunk of a real BIDMC record (about 610 bytes) and a
numerics message (the record's monitor HR, SpO2 and respiration rate of that second). Device i plays record
``i % R`` from a start second of its own, so the fleet is not in lock-step; send times are spread over the second.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.config import recordings_dir  # noqa: E402
from streamer.sessions.bidmc import read_csv_columns  # noqa: E402

N_RECORDS = 8  # the first eight records listed in bidmc/RECORDS
FS_HZ = 125
DESAT_EVERY, DESAT_CYCLE_S, DESAT_FROM_S, DESAT_S = 20, 90, 10, 40


@dataclass(frozen=True)
class Template:
    """Per record and second: the PPG samples as a JSON fragment, and the numerics fields as one."""

    ppg: list[str]
    numerics: list[str]


def load_templates(seconds: int = 470) -> list[Template]:
    folder = recordings_dir() / "bidmc"
    out = []
    for rec in (folder / "RECORDS").read_text().split()[:N_RECORDS]:
        ppg = read_csv_columns(folder / f"{rec}_Signals.csv.gz")["PLETH"]
        num = read_csv_columns(folder / f"{rec}_Numerics.csv")
        chunks = [json.dumps([round(float(v), 5) for v in ppg[k * FS_HZ : (k + 1) * FS_HZ]]) for k in range(seconds)]
        fields = []
        for k in range(seconds):
            vals = {"heart_rate_bpm": num["HR"][k], "spo2_pct": num["SpO2"][k], "resp_rate_bpm": num["RESP"][k]}
            ok = {f: float(v) for f, v in vals.items() if math.isfinite(v) and v > 0}
            fields.append(",".join(f'"{f}":{v}' for f, v in (ok or {"heart_rate_bpm": 70.0}).items()))
        out.append(Template(chunks, fields))
    return out


def device_messages(templates: list[Template], device: int, second: int, ts_ms: int) -> list[tuple[bytes, bytes]]:
    """The two messages device ``device`` sends in its ``second``-th second, stamped ``ts_ms``."""
    t = templates[device % len(templates)]
    k = (device * 37 + second) % len(t.ppg)
    dev = f"fleet-{device:05d}"
    head = f'{{"device_id":"{dev}","ts_ms":{ts_ms},'
    ppg = f'{head}"seq":{2 * second},"kind":"waveform","signal":"ppg","fs_hz":{FS_HZ},"samples":{t.ppg[k]}}}'
    num = f'{head}"seq":{2 * second + 1},"kind":"vitals",{_numerics(t.numerics[k], device, second)}}}'
    key = dev.encode()
    return [(key, ppg.encode()), (key, num.encode())]


def _numerics(fields: str, device: int, second: int) -> str:
    """The record's numerics; every ``DESAT_EVERY``-th device also desaturates for ``DESAT_S`` seconds in every
    ``DESAT_CYCLE_S``: SPO2_LOW is raised and resolved on a schedule, so ingest -> alert latency has samples."""
    if device % DESAT_EVERY or not DESAT_FROM_S <= (second + device) % DESAT_CYCLE_S < DESAT_FROM_S + DESAT_S:
        return fields
    kept = [f for f in fields.split(",") if not f.startswith('"spo2_pct"')]
    return ",".join(kept + ['"spo2_pct":84.0'])


def generate(bootstrap: str, topic: str, devices: int, seconds: float, slices: int = 20) -> dict[str, float]:
    """Send in real time for ``seconds``; returns how many were sent and how far behind the generator fell."""
    from kafka import KafkaProducer

    templates = load_templates()
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, batch_size=256 * 1024)
    start = time.time()
    sent, worst_behind_s, second = 0, 0.0, 0
    while time.time() - start < seconds:
        for s in range(slices):
            due = start + second + s / slices
            behind = time.time() - due
            if behind < 0:
                time.sleep(-behind)
            worst_behind_s = max(worst_behind_s, behind)
            ts_ms = int(time.time() * 1000)
            for device in range(s, devices, slices):
                for key, value in device_messages(templates, device, second, ts_ms):
                    prod.send(topic, key=key, value=value)
                    sent += 1
        second += 1
    prod.flush()
    prod.close()
    return {"sent": sent, "worst_generator_lag_s": round(worst_behind_s, 3), "seconds": second}


def backlog(bootstrap: str, topic: str, devices: int, seconds: int, t0_ms: int | None = None) -> int:
    """``seconds`` of the whole fleet at once, stamped as if sent over the last ``seconds`` seconds (or from
    ``t0_ms``: the same bytes every time)."""
    from kafka import KafkaProducer

    templates = load_templates()
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    t0 = int(time.time() * 1000) - seconds * 1000 if t0_ms is None else t0_ms
    sent = 0
    for second in range(seconds):
        for device in range(devices):
            for key, value in device_messages(templates, device, second, t0 + second * 1000):
                prod.send(topic, key=key, value=value)
                sent += 1
    prod.flush()
    prod.close()
    return sent


class Proc:
    """CPU seconds and resident memory of a process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = float(os.sysconf("SC_CLK_TCK"))

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")
