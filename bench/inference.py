"""Inference benchmark: device-steps/s and latency percentiles against batch size, stateful vs recompute.

``PYTHONPATH=. python bench/inference.py`` writes bench/results/inference.json and inference.png
(about a minute on 2 CPU cores; CUDA is measured too when present).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import checkpoint
from models.checkpoint import Checkpoint, CheckpointError
from models.gru import GRUConfig, build
from streamer.inference.batching import MicroBatcher
from streamer.inference.predictor import Predictor, StepRequest

log = logging.getLogger("bench.inference")

BATCH_SIZES = (1, 4, 16, 64, 256, 1024, 4096)
RESULTS = Path(__file__).resolve().parent / "results"


def _checkpoint() -> Checkpoint:
    """The shipped AF GRU (what serves every ECG/PPG window), or one of its size if none is shipped."""
    try:
        return checkpoint.load("af")
    except CheckpointError:
        torch.manual_seed(0)
        return Checkpoint("af", build(GRUConfig(n_inputs=3, n_outputs=4, n_hidden=32)).eval(), {"version": "bench"})


def _time_calls(fn, min_calls: int, budget_s: float) -> np.ndarray:
    fn()  # warm-up (allocations, CUDA kernels)
    times, start = [], time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < budget_s and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def _summary(batch: int, steps_per_call: int, times: np.ndarray) -> dict[str, Any]:
    p50, p95, p99 = np.percentile(times * 1000.0, [50, 95, 99])
    return {
        "batch_size": batch,
        "calls": len(times),
        "device_steps_per_s": round(batch * steps_per_call / times.mean(), 1),
        "latency_ms_p50": round(p50, 4),
        "latency_ms_p95": round(p95, 4),
        "latency_ms_p99": round(p99, 4),
    }


def bench_device(
    device: torch.device, budget_s: float, window_beats: int, *, torch_on_cpu: bool = False
) -> dict[str, Any]:
    """One device's sweep; on CPU the service steps the numba kernel (``streamer/inference/kernel.py``), and
    ``torch_on_cpu`` measures torch's own GRU instead (what the kernel replaced), for the ratio."""
    ckpt = _checkpoint()
    predictor = Predictor(ckpt, device)
    if torch_on_cpu:
        predictor.weights = None  # Predictor.step_batch then runs the torch module
    cfg = predictor.config
    rng = np.random.default_rng(0)
    rows = []
    for batch in BATCH_SIZES:
        # One new RR interval per device with its carried hidden state: the stateful streaming step.
        reqs = [
            StepRequest(
                f"d{i}",
                rng.normal(size=(1, cfg.n_inputs)).astype(np.float32),
                rng.normal(size=(cfg.n_layers, cfg.n_hidden)).astype(np.float32),
            )
            for i in range(batch)
        ]
        batcher = MicroBatcher(predictor, max_batch_size=batch)
        rows.append(_summary(batch, 1, _time_calls(lambda b=batcher, r=reqs: b.infer_batch(r), 5, budget_s)))
        log.info("%s batch %d: %s steps/s", device, batch, rows[-1]["device_steps_per_s"])
    # The stateless alternative: re-run the whole RR window from zeros for every new interval.
    batch = 256
    window = [
        StepRequest(f"d{i}", rng.normal(size=(window_beats, cfg.n_inputs)).astype(np.float32)) for i in range(batch)
    ]
    step = [
        StepRequest(r.key, r.x[-1:], rng.normal(size=(cfg.n_layers, cfg.n_hidden)).astype(np.float32)) for r in window
    ]
    batcher = MicroBatcher(predictor, max_batch_size=batch)
    recompute = _summary(batch, 1, _time_calls(lambda: batcher.infer_batch(window), 5, budget_s))
    stateful = _summary(batch, 1, _time_calls(lambda: batcher.infer_batch(step), 5, budget_s))
    return {
        "device": str(device)
        + (" (torch GRU)" if torch_on_cpu else " (kernel)" if predictor.weights is not None else ""),
        "batch_sweep": rows,
        "stateful_vs_recompute": {
            "batch_size": batch,
            "window_beats": window_beats,
            "stateful": stateful,
            "recompute_window": recompute,
            "speedup": round(stateful["device_steps_per_s"] / recompute["device_steps_per_s"], 2),
        },
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    info = {
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in result["runs"]:
        sizes = [r["batch_size"] for r in run["batch_sweep"]]
        ax1.loglog(sizes, [r["device_steps_per_s"] for r in run["batch_sweep"]], "o-", label=run["device"])
        ax2.loglog(sizes, [r["latency_ms_p99"] for r in run["batch_sweep"]], "o-", label=f"{run['device']} p99")
        ax2.loglog(sizes, [r["latency_ms_p50"] for r in run["batch_sweep"]], "x--", label=f"{run['device']} p50")
    ax1.set(xlabel="batch size (devices)", ylabel="device-steps / s", title="GRU step throughput")
    ax2.set(xlabel="batch size (devices)", ylabel="latency per batch (ms)", title="batch latency")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    m = result["machine"]
    fig.suptitle(f"{result['model']} on {m['cpu']}, {m['torch_threads']} torch thread(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the dev machine is shared)")
    parser.add_argument("--budget-s", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    ckpt = _checkpoint()
    result = {
        "model": f"{ckpt.name} {ckpt.version}",
        "config": ckpt.model.config.to_dict(),
        "machine": machine(),
        "runs": [bench_device(d, args.budget_s, window_beats=32) for d in devices],
    }
    torch_cpu = bench_device(torch.device("cpu"), args.budget_s, window_beats=32, torch_on_cpu=True)
    result["runs"].insert(1, torch_cpu)
    result["cpu_kernel_vs_torch_throughput"] = {
        str(r["batch_size"]): round(k["device_steps_per_s"] / r["device_steps_per_s"], 2)
        for k, r in zip(result["runs"][0]["batch_sweep"], torch_cpu["batch_sweep"], strict=True)
    }
    cpu = result["runs"][0]["batch_sweep"]
    result["cpu_best_vs_batch1_throughput"] = round(
        max(r["device_steps_per_s"] for r in cpu) / cpu[0]["device_steps_per_s"], 1
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "inference.png")
    log.info("batching gives %.1fx the batch-1 throughput on CPU", result["cpu_best_vs_batch1_throughput"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
