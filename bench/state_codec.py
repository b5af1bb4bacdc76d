"""Device-state compression: size and time of the codec's body compressors on real fleet device states.

States come from ``bench/stage_path.py``'s harness (the real IngestStage and PipelineStage over BIDMC PPG +
numerics per device, models on), captured each time the pipeline writes one; every body is then compressed by
each candidate, medians of ``--repeats`` passes.

    python bench/state_codec.py [--devices 50] [--seconds 30] [--repeats 3]   (writes bench/results/state_codec.txt)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("VITALS_CHECKPOINT_S", "0")  # write every touched device after each batch: many samples

import stage_path  # noqa: E402
import zstandard  # noqa: E402

import streamer.kafka.pipeline_stage as pipeline_stage  # noqa: E402
from streamer import state as codec  # noqa: E402


def _states(devices: int, seconds: int) -> list[Any]:
    captured: list[Any] = []
    encode = pipeline_stage.encode_state

    def grab(tree: Any) -> bytes:
        captured.append(tree)
        return encode(tree)

    pipeline_stage.encode_state = grab  # type: ignore[assignment]
    try:
        asyncio.run(stage_path._run(devices, seconds, True, False))
    finally:
        pipeline_stage.encode_state = encode  # type: ignore[assignment]
    return captured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bodies = [codec.state_body(codec.encode_state(t)) for t in _states(args.devices, args.seconds)]
    assert bodies and all(struct.unpack_from("<I", b)[0] < len(b) for b in bodies)
    zc, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    candidates = {
        "zlib level 1 (before)": (lambda b: zlib.compress(b, 1), zlib.decompress),
        "zstd level 1 (now)": (zc.compress, zd.decompress),
    }
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {len(bodies)} device states of {args.devices} devices, "
        f"body mean {statistics.mean(map(len, bodies)):.0f} bytes, load {os.getloadavg()[0]:.2f}; medians of {args.repeats}"
    ]
    for name, (comp, decomp) in candidates.items():
        c_us, d_us = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            packed = [comp(b) for b in bodies]
            t1 = time.perf_counter()
            back = [decomp(p) for p in packed]
            t2 = time.perf_counter()
            assert back == bodies
            c_us.append((t1 - t0) / len(bodies) * 1e6)
            d_us.append((t2 - t1) / len(bodies) * 1e6)
        size = statistics.mean(map(len, packed))
        lines.append(
            f"{name}: {size:.0f} bytes, compress {statistics.median(c_us):.0f} us, decompress {statistics.median(d_us):.0f} us"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (REPO / "bench" / "results" / "state_codec.txt").write_text(text)


if __name__ == "__main__":
    main()
