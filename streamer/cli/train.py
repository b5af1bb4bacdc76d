"""``vitalstream train af|sepsis|anomaly``: retrain a shipped model (seeded, record- or patient-level split)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# models.train.MODEL_MODULES, named here so that --help imports no torch (a test keeps them equal).
MODEL_NAMES = ("af", "anomaly", "sepsis")


def _cmd(args: argparse.Namespace) -> int:
    from models.checkpoint import WEIGHTS_DIR
    from models.train import run

    meta = run(args.name, args.data, args.weights_dir or WEIGHTS_DIR, args.quick)
    test = {k: v for k, v in meta["metrics"]["test"].items() if not isinstance(v, dict) or "value" in v}
    print(f"{args.name} {meta['version']}: {json.dumps(test, sort_keys=True)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on ../shared/data and write its checkpoint",
        description="Retrain a shipped model (seeded; record- or patient-level split fixed before testing) and "
        "write its checkpoint and metrics. Reads VITALS_RECORDINGS_DIR (the data root when --data is not given).",
    )
    parser.add_argument("name", choices=MODEL_NAMES, help="which model to train")
    parser.add_argument("--data", type=Path, default=None, help="data root (default ../shared/data)")
    parser.add_argument(
        "--weights-dir", type=Path, default=None, help="where to write the checkpoint (default: shipped)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny subset, one epoch: proves the command runs")
    parser.set_defaults(func=_cmd)
