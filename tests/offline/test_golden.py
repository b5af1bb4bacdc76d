"""Golden sessions (real recordings cut short, tests/data/golden): the offline analysis gives the stored alerts.

After an intended change: ``vitalstream golden update`` and review the diff of tests/data/golden/*.expected.json.
"""

from __future__ import annotations

import json

import pytest

from streamer.contracts import PRIORITY_RANK, Priority
from streamer.offline.golden import GOLDENS, expected_path, session_path, summarize

pytestmark = pytest.mark.unit
BY_NAME = {g.name: g for g in GOLDENS}


@pytest.fixture(scope="module")
def summaries() -> dict[str, dict]:
    return {g.name: summarize(g) for g in GOLDENS}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_golden_matches_expectation(name: str, summaries: dict[str, dict]) -> None:
    g = BY_NAME[name]
    assert session_path(g).exists(), "run `vitalstream golden update --rebuild`"
    want = json.loads(expected_path(g).read_text())
    got = summaries[name]
    assert got["counts"] == want["counts"]
    assert got["alerts"] == want["alerts"]


def test_golden_semantics_hold(summaries: dict[str, dict]) -> None:
    """What the recordings are known to contain, independent of the stored files."""
    af = [a for a in summaries["mitdb201_af"]["alerts"] if a["condition"] == "AF_EPISODE"]
    assert af and af[0]["state"] == "RAISED"  # MIT-BIH 201 starts in atrial fibrillation
    onset = [a for a in summaries["mitdb202_af_onset"]["alerts"] if a["condition"] == "AF_EPISODE"]
    assert onset, "the AF onset in MIT-BIH 202 was missed"
    clean = summaries["mitdb100_clean"]["alerts"]
    assert all(PRIORITY_RANK[Priority(a["priority"])] <= PRIORITY_RANK[Priority.LOW] for a in clean)
    assert summaries["mitdb100_clean"]["counts"]["scores"] > 0  # the AF model did run and stayed quiet
