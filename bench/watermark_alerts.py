"""The fleet benchmark's devices offline, with and without the seq watermark: are the alerts the same?

``bench/fleet.py`` showed many more timed alerts with ``VITALS_NUMERICS_CLOSE_ON_SEQ`` on (docs/RESULTS.md, "Fleet").
This runs the same simulated wearables (``bench/fleetload.py``) through the pipeline offline, one batch per second,
both ways, and prints each run's alerts (condition, state) and when the first came: the same alerts, earlier, means
the difference live was only which path raised them (a message, timed, or the clock, not).

    python bench/watermark_alerts.py [--devices 40] [--seconds 240]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import fleetload  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.contracts import TELEMETRY  # noqa: E402
from streamer.offline.analyze import default_inference  # noqa: E402
from streamer.pipeline import Pipeline  # noqa: E402

T0_MS = 1_700_000_000_000


def alerts(devices: int, seconds: int, close_on_seq: bool) -> list[tuple[int, str, str, str]]:
    templates = fleetload.load_templates(seconds + 60)
    settings = Settings(numerics_close_on_seq=close_on_seq)
    pipeline = Pipeline(settings, default_inference(settings))
    out = []
    for second in range(seconds):
        batch = []
        for device in range(devices):
            ts = T0_MS + second * 1000 + device * 10
            for _, value in fleetload.device_messages(templates, device, second, ts):
                batch.append((TELEMETRY.validate_json(value), ts + 5))
        out += [(second, a.device_id, str(a.condition), str(a.state)) for a in pipeline.process(batch).alerts]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=240)
    args = parser.parse_args()
    runs = {flag: alerts(args.devices, args.seconds, flag) for flag in (True, False)}
    for flag, found in runs.items():
        kinds = collections.Counter(f"{c} {s}" for _, _, c, s in found)
        first = found[0][0] if found else None
        print(json.dumps({"close_on_seq": flag, "alerts": len(found), "first_at_s": first, "by_kind": kinds}))
    same = [a[1:] for a in runs[True]] == [a[1:] for a in runs[False]]
    print(json.dumps({"same_alerts_in_the_same_order": same}))


if __name__ == "__main__":
    main()
