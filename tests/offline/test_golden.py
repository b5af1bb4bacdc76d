"""Golden sessions (real recordings cut short, tests/data/golden): the offline analysis gives the stored alerts.

After an intended change: ``vitalstream golden update`` and review the diff of tests/data/golden/*.expected.json.
A speed-up must leave every output where it was: NAME.outputs.json.gz holds each feature, score and alert, and a
value that moves by more than 4 ULP fails here (a few ULP is the spread between CPUs, see streamer/offline/golden.py).
"""

from __future__ import annotations

import json

import pytest

from streamer.contracts import PRIORITY_RANK, Priority
from streamer.offline.analyze import Analysis
from streamer.offline.golden import (
    GOLDENS,
    analyze,
    expected_path,
    output_differences,
    outputs,
    outputs_path,
    read_outputs,
    session_path,
    summarize,
)

pytestmark = pytest.mark.unit
BY_NAME = {g.name: g for g in GOLDENS}


@pytest.fixture(scope="module")
def analyses() -> dict[str, Analysis]:
    return {g.name: analyze(g) for g in GOLDENS}


@pytest.fixture(scope="module")
def summaries(analyses: dict[str, Analysis]) -> dict[str, dict]:
    return {g.name: summarize(g, analyses[g.name]) for g in GOLDENS}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_golden_matches_expectation(name: str, summaries: dict[str, dict]) -> None:
    g = BY_NAME[name]
    assert session_path(g).exists(), "run `vitalstream golden update --rebuild`"
    want = json.loads(expected_path(g).read_text())
    got = summaries[name]
    assert got["counts"] == want["counts"]
    assert got["alerts"] == want["alerts"]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_golden_outputs_have_not_moved(name: str, analyses: dict[str, Analysis]) -> None:
    g = BY_NAME[name]
    assert outputs_path(g).exists(), "run `vitalstream golden update`"
    got = outputs(analyses[name])
    assert sum(len(v) for v in got.values()) > 0
    assert output_differences(got, read_outputs(g)) == []


def test_output_comparison_sees_a_moved_value() -> None:
    base = {"scores": [{"score": 0.5563694093359167, "model": "af"}], "alerts": [{"state": "RAISED"}]}
    one_ulp = {"scores": [{"score": 0.5563694093359166, "model": "af"}], "alerts": [{"state": "RAISED"}]}
    assert output_differences(one_ulp, base) == []  # the spread between CPUs
    moved = {"scores": [{"score": 0.5563694093359167 * (1 + 1e-14), "model": "af"}], "alerts": [{"state": "RAISED"}]}
    assert output_differences(moved, base) == [
        f"scores[0].score: {moved['scores'][0]['score']!r}, expected 0.5563694093359167"
    ]
    flipped = {"scores": base["scores"], "alerts": [{"state": "CLEARED"}]}
    assert output_differences(flipped, base) == ["alerts[0].state: 'CLEARED', expected 'RAISED'"]
    fewer = {"scores": [], "alerts": base["alerts"]}
    assert output_differences(fewer, base) == ["scores: 0 items, expected 1"]
    assert output_differences({"scores": [{"score": 1}]}, {"scores": [{"score": 1.0}]}) == [
        "scores[0].score: 1, expected 1.0"
    ]


def test_golden_semantics_hold(summaries: dict[str, dict]) -> None:
    """What the recordings are known to contain, independent of the stored files."""
    af = [a for a in summaries["mitdb201_af"]["alerts"] if a["condition"] == "AF_EPISODE"]
    assert af and af[0]["state"] == "RAISED"  # MIT-BIH 201 starts in atrial fibrillation
    onset = [a for a in summaries["mitdb202_af_onset"]["alerts"] if a["condition"] == "AF_EPISODE"]
    assert onset, "the AF onset in MIT-BIH 202 was missed"
    clean = summaries["mitdb100_clean"]["alerts"]
    assert all(PRIORITY_RANK[Priority(a["priority"])] <= PRIORITY_RANK[Priority.LOW] for a in clean)
    assert summaries["mitdb100_clean"]["counts"]["scores"] > 0  # the AF model did run and stayed quiet
