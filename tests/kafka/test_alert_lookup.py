"""Resolving the short alert id that ``vitalstream alerts`` shows (pure code; the broker path is in test_ops_broker)."""

from __future__ import annotations

import pytest

from streamer.contracts import Alert
from streamer.kafka.alert_lookup import AlertHistory, AlertLookupError, AmbiguousAlert, UnknownAlert, resolve

pytestmark = pytest.mark.unit


def _alert(alert_id: str, state: str = "RAISED", device: str = "dev-1") -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id,
            "device_id": device,
            "condition": "AF_EPISODE",
            "priority": "medium",
            "state": state,
            "episode_start_ms": 1000,
            "transition_ts_ms": 2000,
            "message": "m",
            "evidence": {"rule": "r", "window_start_ms": 0, "window_end_ms": 1},
            "latency": {"device_ts_ms": 2000},
        }
    )


HISTORY = AlertHistory(
    {a.alert_id: a for a in (_alert("3183637168c7" + "0" * 20), _alert("3183aa" + "1" * 26), _alert("ab" * 16))},
    {0: 3},
)


def test_a_unique_prefix_resolves_case_insensitively() -> None:
    assert resolve("3183637168C7", HISTORY).alert_id.startswith("3183637168c7")
    assert resolve(" abab ", HISTORY).alert_id == "ab" * 16


def test_an_ambiguous_prefix_is_refused_and_names_the_candidates() -> None:
    with pytest.raises(AmbiguousAlert, match=r"3183 matches 2 alerts: 3183637168c70000 \(dev-1 AF_EPISODE\)"):
        resolve("3183", HISTORY)


@pytest.mark.parametrize("given", ["318", "31836371zz", "", "3183-6371"])
def test_what_is_not_a_hex_prefix_of_four_or_more_is_refused(given: str) -> None:
    with pytest.raises(AlertLookupError, match="not an alert id"):
        resolve(given, HISTORY)


def test_an_unknown_prefix_says_how_many_alerts_were_searched() -> None:
    with pytest.raises(UnknownAlert, match=r"no alert id starts with ffff \(3 alerts retained"):
        resolve("ffff", HISTORY)
