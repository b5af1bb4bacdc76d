"""``vitalstream eval signals|alarms|af|sepsis|anomaly``: figures on any folder laid out like ../shared/data."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

AF_LABELS = "N/A/O/~"  # models.datasets.AF_CLASSES, spelled out so that --help imports no model code


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _print_signals(result: dict[str, Any]) -> None:
    for row in result["records"]:
        print("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    print("aggregate:")
    for key, value in result["aggregate"].items():
        print(f"  {key:34s} {_fmt(value)}")


def _signals(args: argparse.Namespace) -> int:
    from streamer.evaluation.signals import evaluate

    result = evaluate(args.mitdb, args.bidmc, args.heartpy)
    if args.json:
        print(json.dumps(result))
    else:
        _print_signals(result)
    return 0


def _print_alarms(result: dict) -> None:
    print(f"{'record':<10} {'minutes':>7} {'policy':>6} {'naive':>6}  policy / naive by condition")
    for r in result["records"]:
        print(f"{r['record']:<10} {r['duration_s'] / 60:>7.1f} {r['policy_alerts']:>6} {r['naive_alarms']:>6}  "
              f"{r['policy_by_condition']} / {r['naive_by_condition']}")  # fmt: skip
    r = result
    print(f"{r['n_records']} records, {r['patient_hours']} patient-hours, {r['window_s']} s windows: policy "
          f"{r['policy_alerts_per_patient_hour']} vs naive {r['naive_alerts_per_patient_hour']} "
          "physiological alerts per patient-hour")  # fmt: skip
    s = r["sustained_breaches"]
    print(f"sustained breaches (>= {r['breach_min_s']:g} s beyond a limit): {s['n_alerted']} of {s['n_breaches']} alerted, median "
          f"latency {s['median_latency_s']} s, worst {s['max_latency_s']} s")  # fmt: skip
    for condition, c in r["sustained_breaches_by_condition"].items():
        print(f"  {condition:<16} {c['n_alerted']} of {c['n_breaches']} alerted, median {c['median_latency_s']} s")


def _alarms(args: argparse.Namespace) -> int:
    from streamer.evaluation.alarm_burden import evaluate

    bidmc_dir = Path(args.bidmc)
    if not any(bidmc_dir.glob("bidmc_*_Numerics.csv")):
        raise SystemExit(f"no bidmc_NN_Numerics.csv in {bidmc_dir}")
    result = evaluate(bidmc_dir, window_s=args.window_s, breach_min_s=args.breach_min_s)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        _print_alarms(result)
    return 0


def _print_model(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return 0
    for key, value in result.items():
        print(f"{key:32s} {value}")
    return 0


def _af(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_af

    return _print_model(evaluate_af(args.data, args.mitdb, args.weights_dir), args.json)


def _sepsis(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_sepsis

    return _print_model(evaluate_sepsis(args.data, args.weights_dir), args.json)


def _anomaly(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_anomaly

    return _print_model(evaluate_anomaly(args.data, args.weights_dir), args.json)


def _register_models(eval_subparsers: Any) -> None:
    specs: tuple[tuple[str, Callable[[argparse.Namespace], int], str], ...] = (
        ("af", _af, f"AF detector: F1 of AF and mean F1 over N/A/O ({AF_LABELS} labels)"),
        ("sepsis", _sepsis, "sepsis risk: AUROC and normalised clinical utility"),
        ("anomaly", _anomaly, "anomaly score: alarms per patient-hour on non-septic stays"),
    )
    for name, handler, help_text in specs:
        parser = eval_subparsers.add_parser(
            name,
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}: the shipped checkpoint (or --weights-dir) on "
            "every record of --data; a progress bar while the records load. Reads "
            "no VITALS_* setting (folders and weights are options).",
        )
        parser.add_argument("--data", type=Path, required=True, help="folder in the layout of ../shared/data/<set>")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
        parser.add_argument("--weights-dir", type=Path, default=None, help="checkpoints (default: shipped)")
        if name == "af":
            parser.add_argument("--mitdb", type=Path, default=None, help="also score an MIT-BIH folder per interval")
        parser.set_defaults(func=handler)


def register_eval(eval_subparsers: Any) -> None:
    from streamer.config import recordings_dir

    data = recordings_dir()
    p = eval_subparsers.add_parser(
        "signals",
        help="beat detection, rates and quality on real recordings",
        description="Beat detection (sensitivity, PPV against the reference annotations), heart and respiration "
        "rate errors per window and signal quality, per record and pooled, with a progress bar per folder. Reads "
        "the window and quality settings (VITALS_*_WINDOW_S/_HOP_S, VITALS_SQI_THRESHOLD).",
    )
    p.add_argument("--mitdb", type=Path, default=None, help=f"MIT-BIH folder (e.g. {data / 'mitdb'})")
    p.add_argument("--bidmc", type=Path, default=None, help=f"BIDMC folder (e.g. {data / 'bidmc'})")
    p.add_argument("--heartpy", type=Path, default=None, help="HeartPy examples folder")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.set_defaults(func=_signals)

    p = eval_subparsers.add_parser(
        "alarms",
        help="alarm burden on BIDMC: policy vs naive threshold alarms",
        description="Alarm burden on the BIDMC monitor numerics: alerts per patient-hour of the project's policy "
        "(persistence, hysteresis, dedup) against naive threshold alarms. Reads VITALS_RECORDINGS_DIR (default "
        "--bidmc) and the alert settings.",
    )
    p.add_argument("--bidmc", default=str(data / "bidmc"), help="folder with bidmc_NN_Numerics.csv")
    p.add_argument("--window-s", type=int, default=60, help="numerics window for the policy, seconds")
    p.add_argument("--breach-min-s", type=float, default=120.0, help="shortest run beyond a limit that must alert")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.set_defaults(func=_alarms)
    _register_models(eval_subparsers)
