"""The short chaos variant on the real broker: one worker kill -9 and one rebalance 1->2->1, nothing lost or changed.

The full suite (>= 5 kills, 3 broker restarts, 3 rebalance cycles) is ``make chaos`` (bench/chaos.py).
"""

from __future__ import annotations

import json

import pytest

from bench.chaos import QUIET, SHORT_PLAN, short_inputs, suite

pytestmark = pytest.mark.integration


def test_one_kill_and_one_rebalance_lose_and_change_nothing(settings_factory, tmp_path) -> None:
    settings = settings_factory(**QUIET)
    # ECG only (the full suite has BIDMC); two copies put devices on partitions 0 and 3, so that whichever half the
    # second worker takes, its takeover can be seen in output.
    inputs = short_inputs(copies=2, names=("mitdb201_af", "mitdb100_clean"))
    result = suite(settings, inputs, SHORT_PLAN, tmp_path / "chaos", gap_s=(0.0, 0.5), feed_s=60.0)
    (tmp_path / "chaos.json").write_text(json.dumps(result, indent=2, default=str))
    accounting, comparison = result["accounting"], result["comparison"]
    assert result["drained"], result["events"]
    assert accounting["lost"] == 0 and accounting["accounted"], accounting
    assert accounting["forwarded_again_differing"] == 0
    assert accounting["malformed"] == 12 and accounting["duplicates_injected"] == 30, accounting
    for name in ("features", "scores"):
        got = comparison[name]
        assert got["missing"] == 0 and got["extra_before_data_end"] == 0, (name, got)
        assert got["resent_differing"] == 0, (name, got)
    assert comparison["features"]["max_abs_diff"] <= 1e-9
    assert comparison["scores"]["max_abs_diff"] <= 1e-6
    assert comparison["alerts"]["identical"] and comparison["alerts"]["resent_differing"] == 0, comparison["alerts"]
    assert [e["fault"] for e in result["events"]] == [
        "worker kill -9, new process started",
        "rebalance 1->2->1 (second worker SIGTERM)",
    ]
    recovery = result["recovery"]
    assert recovery["rebalances_moved"] == [True], result["events"]  # the second worker really took partitions
    assert recovery["worker_kill9_first_output_s"][0] is not None, result["events"]  # the replacement resumed
    assert recovery["rebalance_takeover_s"][0]["s"] is not None, result["events"]  # the first worker took them back
    assert recovery["workers_exited_by_themselves"] == 0
