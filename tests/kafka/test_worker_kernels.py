"""The worker compiles its numba kernels before it takes partitions: processing real data compiles nothing more."""

from __future__ import annotations

import json
import subprocess
import sys

# A fresh process: in this one, earlier tests have compiled (or loaded) every kernel already.
_PROBE = """
import itertools, json, sys
import numba
from streamer.config import Settings
from streamer.kafka.worker import compile_kernels
from streamer.offline.analyze import analyze_records, default_inference
from streamer.offline.golden import GOLDENS, session_path
from streamer.sessions.format import read_session

def signatures():
    out = {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith("streamer."):
            continue
        for attr, f in list(vars(mod).items()):
            if isinstance(f, numba.core.registry.CPUDispatcher):
                out[f"{name}.{attr}"] = sorted(map(str, f.signatures))
    return out

settings = Settings(topic_prefix="k.", app_id="k.app")
inference = default_inference(settings)  # a Predictor compiles the models' kernel when it is created
compile_kernels()
before = signatures()
records = [r for g in GOLDENS if g.name in ("bidmc01_icu", "mitdb100_clean")
           for r in itertools.islice(read_session(session_path(g)), 400)]
result = analyze_records(records, settings, inference=inference)
after = signatures()
new = {k: sorted(set(v) - set(before.get(k, []))) for k, v in after.items()}
print(json.dumps({"new": {k: v for k, v in new.items() if v}, "before": before,
                  "features": result.counts["features"], "scores": result.counts["scores"]}))
"""


def test_processing_real_data_after_compile_kernels_compiles_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=600, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["features"] > 0 and probe["scores"] > 0  # the run really went through windows and models
    warmed = {name.rsplit(".", 1)[-1] for name, sigs in probe["before"].items() if sigs}
    assert {"detrended", "fuse_spectra", "hrv_stats", "close_blocks", "_run"} <= warmed
    assert probe["new"] == {}, f"compiled inside the first windows: {probe['new']}"
