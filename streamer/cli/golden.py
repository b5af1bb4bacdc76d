"""``vitalstream golden check|update``: the golden sessions in tests/data/golden."""

from __future__ import annotations

import argparse
import json


def _cmd(args: argparse.Namespace) -> int:
    from streamer.offline.golden import (
        GOLDENS,
        REPO,
        analyze,
        cut,
        expected_path,
        output_differences,
        outputs,
        read_outputs,
        session_path,
        summarize,
        write_outputs,
    )
    from streamer.progress import track

    wanted = [g for g in GOLDENS if not args.only or g.name in args.only]
    failed = 0
    for g in track(wanted, desc=f"golden {args.action}", unit="session"):
        if args.action == "update":
            if args.rebuild or not session_path(g).exists():
                cut(g)
            result = analyze(g)
            expected_path(g).write_text(json.dumps(summarize(g, result), indent=1) + "\n")
            write_outputs(g, result)
            print(f"updated {expected_path(g).relative_to(REPO)} and {g.name}.outputs.json.gz")
            continue
        result = analyze(g)
        got, want = summarize(g, result), json.loads(expected_path(g).read_text())
        moved = output_differences(outputs(result), read_outputs(g), max_ulp=args.max_ulp, limit=10**9)
        same = got["alerts"] == want["alerts"] and got["counts"] == want["counts"] and not moved
        failed += not same
        print(f"{'ok  ' if same else 'DIFF'} {g.name}: {len(got['alerts'])} alert transitions, {got['counts']}")
        if moved:
            print(f"     {len(moved)} output values differ (floats by more than {args.max_ulp} ULP), first ones:")
        for line in moved[:5]:
            print(f"     {line}")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "golden",
        help="check or update the golden sessions in tests/data/golden",
        description="check: analyse each golden session (short cuts of real recordings) offline and compare its "
        "alert transitions and counts with tests/data/golden/NAME.expected.json and every output value with "
        "NAME.outputs.json.gz (floats to within --max-ulp); exit 1 on a difference. update: "
        "rewrite the expected files from the current code (review the diff); --rebuild cuts the sessions again "
        "from the recordings. Reads VITALS_RECORDINGS_DIR (with --rebuild) and the pipeline settings.",
    )
    p.add_argument("action", choices=["check", "update"])
    p.add_argument("--rebuild", action="store_true", help="with update: cut the sessions again from ../shared/data")
    p.add_argument("--only", action="append", help="only this golden (repeatable)")
    p.add_argument(
        "--max-ulp",
        type=int,
        default=4,
        help="with check: how many units in the last place a float output may move (default 4, the spread between "
        "CPUs; 0 lists every value this machine computes differently from the stored files)",
    )
    p.set_defaults(func=_cmd)
