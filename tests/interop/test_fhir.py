"""FHIR R4 output: an AF session's Bundle and each mapping validate with the FHIR library and say what they should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamer.contracts import Alert, AlertState, Evidence, FeatureRecord, LatencyStamps, ModelRef, ScoreRecord
from streamer.interop import fhir
from streamer.interop.codes import CODES, LOINC_SYSTEM, MDC_SYSTEM
from streamer.offline.golden import GOLDENS, session_path
from tests.fhir_validation import dangling_references, resources_of, validate_bundle

pytestmark = pytest.mark.unit
AF_SESSION = session_path(next(g for g in GOLDENS if g.name == "mitdb202_af_onset"))


@pytest.fixture(scope="module")
def af_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from streamer.cli.main import main

    out = tmp_path_factory.mktemp("fhir") / "bundle.json"
    assert main(["analyze", str(AF_SESSION), "--fhir", str(out)]) == 0
    return json.loads(out.read_text())


def _window(**kw: Any) -> FeatureRecord:
    base: dict[str, Any] = dict(device_id="dev:1", patient_id="p-9", signal="numerics", window_start_ms=1_577_836_800_000,
                                window_end_ms=1_577_836_860_000, signal_quality=0.8, usable=True, feature_version="1",
                                features={"heart_rate_bpm": 72.0, "spo2_pct": 97.0, "sbp_mmhg": 120.0, "dbp_mmhg": 80.0,
                                          "temp_c": None})  # fmt: skip
    base.update(kw)
    return FeatureRecord(**base)


def _alert(state: str, at_s: int, **values: Any) -> Alert:
    return Alert(alert_id="a" * 32, device_id="dev:1", patient_id="p-9", condition="AF_EPISODE", priority="medium",
                 state=state, episode_start_ms=1_577_836_800_000, transition_ts_ms=1_577_836_800_000 + at_s * 1000,
                 message="AF suspected", evidence=Evidence(rule="af>thr", window_start_ms=0, window_end_ms=10_000,
                 values={"heart_rate_bpm": 130.0, **values}), model=ModelRef(name="af", version="1-x"),
                 latency=LatencyStamps(device_ts_ms=0))  # fmt: skip


def test_af_session_bundle_validates_and_links_everything(af_bundle: dict[str, Any]) -> None:
    validate_bundle(af_bundle)
    assert af_bundle["type"] == "transaction"
    assert dangling_references(af_bundle) == set()
    (device,) = resources_of(af_bundle, "Device")
    assert device["identifier"][0]["value"] == "mitdb-202"
    issues = resources_of(af_bundle, "DetectedIssue")
    assert any(i["code"]["coding"][0]["code"] == "AF_EPISODE" for i in issues)
    assert all(i["author"] == {"reference": f"Device/{device['id']}"} for i in issues)
    observations = resources_of(af_bundle, "Observation")
    vitals = [o for o in observations if o.get("category")]
    scores = [o for o in observations if o["code"]["coding"][0]["system"] == fhir.MODEL_SYSTEM]
    assert vitals and scores and {s["code"]["coding"][0]["code"] for s in scores} >= {"af"}


def test_vital_sign_observations_carry_the_table(af_bundle: dict[str, Any]) -> None:
    by_loinc = {c.loinc: c for c in CODES.values() if c.loinc}
    vitals = [o for o in resources_of(af_bundle, "Observation") if o.get("category")]
    for obs in vitals:
        loinc, *rest = obs["code"]["coding"]
        assert loinc["system"] == LOINC_SYSTEM and loinc["code"] in by_loinc
        code = by_loinc[loinc["code"]]
        assert obs["valueQuantity"]["code"] == code.ucum
        if code.mdc_code:
            assert {"system": MDC_SYSTEM, "code": str(code.mdc_code), "display": code.mdc_refid} in rest
        assert obs["effectivePeriod"]["start"] < obs["effectivePeriod"]["end"]


def test_window_with_patient_claims_the_profiles_and_pairs_blood_pressure() -> None:
    rec = _window()
    obs = fhir.feature_observations(rec)
    bundle = fhir.transaction([fhir.device("dev:1"), fhir.patient("p-9"), *obs])
    validate_bundle(bundle)
    assert dangling_references(bundle) == set()
    by_code = {o["code"]["coding"][0]["code"]: o for o in obs}
    assert set(by_code) == {"8867-4", "59408-5", "85354-9"}  # temp is None; SBP/DBP become one panel
    assert [c["code"]["coding"][0]["code"] for c in by_code["85354-9"]["component"]] == ["8480-6", "8462-4"]
    assert "2708-6" in [c["code"] for c in by_code["59408-5"]["code"]["coding"]]
    assert by_code["8867-4"]["meta"]["profile"][-1].endswith("/heartrate")
    assert by_code["8867-4"]["subject"] == fhir.patient_ref("p-9")
    assert by_code["8867-4"]["effectivePeriod"] == {
        "start": "2020-01-01T00:00:00.000Z",
        "end": "2020-01-01T00:01:00.000Z",
    }


def test_unusable_window_and_no_patient() -> None:
    assert fhir.feature_observations(_window(usable=False)) == []
    (obs,) = fhir.feature_observations(_window(patient_id=None, features={"heart_rate_bpm": 60.0}))
    assert "meta" not in obs and obs["subject"] == fhir.device_ref("dev:1")  # no Patient: no profile claimed


def test_score_observation() -> None:
    rec = ScoreRecord(device_id="dev:1", model=ModelRef(name="af", version="1-x"), ts_ms=1_577_836_800_000, score=0.9,
                      threshold=0.5, above_threshold=True, source="ecg")  # fmt: skip
    obs = fhir.score_observation(rec)
    validate_bundle(fhir.transaction([fhir.device("dev:1"), obs]))
    assert obs["interpretation"][0]["coding"][0]["code"] == "H"
    assert obs["referenceRange"][0]["high"]["value"] == 0.5 and obs["method"]["text"] == "af 1-x on ecg"


def test_alert_history_becomes_one_detected_issue() -> None:
    history = [_alert("RAISED", 0), _alert("ACKNOWLEDGED", 30, by="nurse-7"), _alert("RESOLVED", 90)]
    issue = fhir.alert_issue(reversed(history))
    validate_bundle(fhir.transaction([fhir.device("dev:1"), fhir.patient("p-9"), issue]))
    assert issue["identifiedPeriod"] == {"start": "2020-01-01T00:00:00.000Z", "end": "2020-01-01T00:01:30.000Z"}
    assert issue["mitigation"][0]["author"]["identifier"]["value"] == "nurse-7"
    assert issue["severity"] == "moderate" and issue["status"] == "amended"
    assert {"url": fhir.EXT_ALERT_STATE, "valueCode": AlertState.RESOLVED.value} in issue["extension"]
    assert issue["evidence"][0]["code"][0]["coding"][0]["code"] == "8867-4"
    assert fhir.alert_issue(history[:1])["status"] == "final"
    with pytest.raises(ValueError, match="exactly one alert id"):
        fhir.alert_issue([])


def test_the_library_rejects_a_broken_resource() -> None:
    obs = fhir.feature_observations(_window())[0]
    without_status = {k: v for k, v in obs.items() if k != "status"}  # required in R4
    for broken in (without_status, {**obs, "valueQuantity": {"value": "high"}}, {**obs, "comment": "R3 only"}):
        with pytest.raises(ValueError):
            validate_bundle(fhir.transaction([broken]))


def test_ids_are_valid_and_stable(tmp_path: Path) -> None:
    a, b = fhir.resource_id("obs", "dev:1", 5), fhir.resource_id("obs", "dev:1", 5)
    assert a == b != fhir.resource_id("obs", "dev:1", 6)
    assert len(a) <= 64 and all(ch.isalnum() or ch in "-." for ch in a)
