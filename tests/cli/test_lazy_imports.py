"""The light commands answer without importing the heavy stack (torch, scipy, matplotlib, Faust)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("torch", "scipy", "matplotlib", "sklearn", "faust", "numpy", "wfdb")

PROBE = """
import json, sys
from streamer.cli.main import build_parser
parser = build_parser()
for argv in ({argvs}):
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "argvs",
    [
        [["--help"]],
        [["ack", "--help"]],
        [["ack", "0123456789ab"]],
        [["tail", "alerts", "--max-messages", "1"]],
        [["produce", "--help"]],
        [["eval", "--help"], ["eval", "signals", "--help"], ["train", "--help"], ["import", "--help"]],
    ],
)
def test_parsing_a_light_command_imports_no_heavy_module(argvs: list[list[str]]) -> None:
    code = PROBE.format(argvs=repr(tuple(argvs)), heavy=repr(HEAVY))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_help_lists_every_command_and_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for command in ("worker", "produce", "tail", "alerts", "ack", "analyze", "replay", "import", "eval", "train"):
        assert command in done.stdout


def test_cli_choice_lists_match_the_library() -> None:
    from models.train import MODEL_MODULES
    from streamer.cli.importing import IMPORT_KINDS
    from streamer.cli.train import MODEL_NAMES
    from streamer.sessions.importers import READERS

    assert tuple(sorted(READERS)) == IMPORT_KINDS
    assert tuple(sorted(MODEL_MODULES)) == MODEL_NAMES
