"""FHIR R4 JSON from the wire records: pure functions, no FHIR library (tests validate the output with one).

- a window's vital-sign features -> ``Observation`` per coded feature (FHIR vital-signs profile when the
  window has a patient; blood pressure as the profile's panel with systolic and diastolic components);
- a model score -> ``Observation`` (value, threshold as reference range, H/N interpretation, model as method);
- an alert's transitions -> one ``DetectedIssue`` per alert id, authored by the ``Device``.

Resource ids are deterministic hashes of what identifies the record, so a re-export updates (PUT) instead of
duplicating. Devices and patients appear only by their pseudonymous ids. docs/INTEROP.md explains the choices.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streamer.contracts import Alert, AlertState, FeatureRecord, ScoreRecord
from streamer.interop.codes import (
    CODES,
    LOINC_SYSTEM,
    MDC_SYSTEM,
    SPO2_PROFILE_LOINC,
    UCUM_SYSTEM,
    VITAL_FEATURES,
    FieldCode,
)

Resource = dict[str, Any]

DEVICE_ID_SYSTEM = "urn:vitalstream:device-id"
PATIENT_ID_SYSTEM = "urn:vitalstream:patient-id"
ALERT_ID_SYSTEM = "urn:vitalstream:alert-id"
CONDITION_SYSTEM = "urn:vitalstream:alert-condition"
MODEL_SYSTEM = "urn:vitalstream:model"
WINDOW_SYSTEM = "urn:vitalstream:feature-window"
EXT_ALERT_STATE = "urn:vitalstream:fhir:alert-state"
EXT_ALERT_PRIORITY = "urn:vitalstream:fhir:alert-priority"
EXT_SIGNAL_QUALITY = "urn:vitalstream:fhir:signal-quality"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_PROFILE = "http://hl7.org/fhir/StructureDefinition/"
_SPECIFIC_PROFILE = {"heart_rate_bpm": "heartrate", "pulse_rate_bpm": "heartrate", "spo2_pct": "oxygensat",
                     "resp_rate_bpm": "resprate", "resp_rate_bpm_ppg": "resprate", "temp_c": "bodytemp"}  # fmt: skip
# IEC 60601-1-8 priority -> DetectedIssue.severity (R4 has high | moderate | low).
_SEVERITY = {"high": "high", "medium": "moderate", "low": "low", "info": "low"}
_BP_PARTS = ("sbp_mmhg", "dbp_mmhg")


def instant(ts_ms: int) -> str:
    """Epoch milliseconds as a FHIR instant (UTC, millisecond precision)."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resource_id(kind: str, *parts: object) -> str:
    """A valid FHIR id (``[A-Za-z0-9-.]{1,64}``) that is the same every time for the same parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]
    return f"{kind}-{digest}"


def device_ref(device_id: str) -> dict[str, str]:
    return {"reference": f"Device/{resource_id('dev', device_id)}"}


def patient_ref(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{resource_id('pat', patient_id)}"}


def device(device_id: str) -> Resource:
    return {
        "resourceType": "Device",
        "id": resource_id("dev", device_id),
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": device_id}],
        "status": "active",
    }


def patient(patient_id: str) -> Resource:
    """Only the pseudonymous identifier: no name, birth date or anything else that identifies a person."""
    return {
        "resourceType": "Patient",
        "id": resource_id("pat", patient_id),
        "identifier": [{"system": PATIENT_ID_SYSTEM, "value": patient_id}],
    }


def codeable(code: FieldCode, extra: tuple[str, str] | None = None) -> dict[str, Any]:
    """LOINC (first, as the vital-signs profile wants) and MDC codings of one table row."""
    coding = [{"system": LOINC_SYSTEM, "code": code.loinc, "display": code.display}] if code.loinc else []
    if extra:
        coding.append({"system": LOINC_SYSTEM, "code": extra[0], "display": extra[1]})
    if code.mdc_refid:
        coding.append({"system": MDC_SYSTEM, "code": str(code.mdc_code), "display": code.mdc_refid})
    return {"coding": coding, "text": code.display}


def quantity(value: float, code: FieldCode) -> dict[str, Any]:
    return {"value": value, "unit": code.ucum, "system": UCUM_SYSTEM, "code": code.ucum}


def _vital_base(rec: FeatureRecord, key: str, profile: str | None) -> Resource:
    obs: Resource = {
        "resourceType": "Observation",
        "id": resource_id("obs", rec.device_id, rec.signal, key, rec.window_start_ms, rec.window_end_ms),
        "identifier": [{"system": WINDOW_SYSTEM, "value": f"{rec.device_id}/{rec.signal}/{key}/{rec.window_start_ms}"}],
        "status": "final",
        "category": [{"coding": [{"system": _CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}],
        "effectivePeriod": {"start": instant(rec.window_start_ms), "end": instant(rec.window_end_ms)},
        "device": device_ref(rec.device_id),
    }
    if rec.patient_id:  # the vital-signs profile needs a Patient subject; without one we claim no profile
        obs["meta"] = {"profile": [_PROFILE + "vitalsigns"] + ([_PROFILE + profile] if profile else [])}
        obs["subject"] = patient_ref(rec.patient_id)
    else:
        obs["subject"] = device_ref(rec.device_id)
    if rec.signal_quality is not None:
        obs["extension"] = [{"url": EXT_SIGNAL_QUALITY, "valueDecimal": rec.signal_quality}]
    return obs


def feature_observations(rec: FeatureRecord) -> list[Resource]:
    """One vital-sign Observation per coded, present feature of a usable window (none for an unusable one)."""
    if not rec.usable:
        return []
    out = []
    values = {key: rec.features.get(name) for (signal, name), key in VITAL_FEATURES.items() if signal == rec.signal}
    panel = all(values.get(part) is not None for part in _BP_PARTS)
    if panel:
        out.append(_bp_panel(rec, values))
    for key, value in values.items():
        if value is None or (panel and key in _BP_PARTS):
            continue
        obs = _vital_base(rec, key, _SPECIFIC_PROFILE.get(key))
        extra = SPO2_PROFILE_LOINC if key == "spo2_pct" else None
        out.append({**obs, "code": codeable(CODES[key], extra), "valueQuantity": quantity(value, CODES[key])})
    return out


def _bp_panel(rec: FeatureRecord, values: dict[str, float | None]) -> Resource:
    obs = _vital_base(rec, "bp", "bp")
    obs["code"] = {"coding": [{"system": LOINC_SYSTEM, "code": "85354-9", "display": "Blood pressure panel"}],
                   "text": "Blood pressure"}  # fmt: skip
    obs["component"] = [
        {"code": codeable(CODES[part]), "valueQuantity": quantity(float(values[part] or 0.0), CODES[part])}
        for part in _BP_PARTS
    ]
    return obs


def score_observation(rec: ScoreRecord) -> Resource:
    """A model output: not a probability for every model (anomaly), so an Observation, not a RiskAssessment."""
    obs: Resource = {
        "resourceType": "Observation",
        "id": resource_id("score", rec.device_id, rec.model.name, rec.model.version, rec.source, rec.ts_ms),
        "status": "final",
        "code": {"coding": [{"system": MODEL_SYSTEM, "code": rec.model.name}], "text": f"{rec.model.name} model score"},
        "subject": device_ref(rec.device_id),
        "effectiveDateTime": instant(rec.ts_ms),
        "valueQuantity": {"value": rec.score, "unit": "1", "system": UCUM_SYSTEM, "code": "1"},
        "device": device_ref(rec.device_id),
        "method": {"text": f"{rec.model.name} {rec.model.version}" + (f" on {rec.source}" if rec.source else "")},
    }
    if rec.threshold is not None:
        obs["referenceRange"] = [{"high": {"value": rec.threshold}, "text": "alert threshold"}]
    if rec.above_threshold is not None:
        code = "H" if rec.above_threshold else "N"
        obs["interpretation"] = [{"coding": [{"system": _INTERPRETATION, "code": code}]}]
    return obs


def alert_issue(transitions: Iterable[Alert]) -> Resource:
    """The DetectedIssue of one alert id, from its transitions so far (any order; the latest gives the state)."""
    history = sorted(transitions, key=lambda a: (a.transition_ts_ms, list(AlertState).index(a.state)))
    if not history or len({a.alert_id for a in history}) != 1:
        raise ValueError("alert_issue needs the transitions of exactly one alert id")
    last = history[-1]
    issue: Resource = {
        "resourceType": "DetectedIssue",
        "id": resource_id("alert", last.alert_id),
        "identifier": [{"system": ALERT_ID_SYSTEM, "value": last.alert_id}],
        "status": "final" if len(history) == 1 else "amended",
        "code": {"coding": [{"system": CONDITION_SYSTEM, "code": last.condition.value}], "text": last.condition.value},
        "severity": _SEVERITY[max(history, key=_rank).priority.value],
        "identifiedPeriod": {"start": instant(last.episode_start_ms)},
        "author": device_ref(last.device_id),
        "evidence": [_evidence(last)],
        "detail": last.message + (f" (model {last.model.name} {last.model.version})" if last.model else ""),
        "extension": [
            {"url": EXT_ALERT_STATE, "valueCode": last.state.value},
            {"url": EXT_ALERT_PRIORITY, "valueCode": last.priority.value},
        ],
    }
    if last.patient_id:
        issue["patient"] = patient_ref(last.patient_id)
    if last.state is AlertState.RESOLVED:
        issue["identifiedPeriod"]["end"] = instant(last.transition_ts_ms)
    acks = [a for a in history if a.state is AlertState.ACKNOWLEDGED]
    if acks:
        issue["mitigation"] = [_mitigation(acks[0])]
    return issue


def _rank(alert: Alert) -> int:
    return ["info", "low", "medium", "high"].index(alert.priority.value)


def _evidence(alert: Alert) -> dict[str, Any]:
    ev = alert.evidence
    coded = [codeable(CODES[name]) for name in sorted(ev.values) if name in CODES]
    window = f"{ev.rule}; window {instant(ev.window_start_ms)} to {instant(ev.window_end_ms)}"
    out: dict[str, Any] = {"detail": [{"display": window}]}
    if coded:
        out["code"] = coded
    return out


def _mitigation(ack: Alert) -> dict[str, Any]:
    by = ack.evidence.values.get("by")
    out: dict[str, Any] = {"action": {"text": "alarm acknowledged"}, "date": instant(ack.transition_ts_ms)}
    if by:
        out["author"] = {"identifier": {"system": "urn:vitalstream:user-id", "value": str(by)}}
    return out


def resources(
    features: Iterable[FeatureRecord], scores: Iterable[ScoreRecord], alerts: Iterable[Alert]
) -> list[Resource]:
    """Devices, patients, Observations and DetectedIssues of the records, each resource once."""
    out: list[Resource] = []
    people: set[tuple[str, str]] = set()
    by_alert: dict[str, list[Alert]] = {}
    for f in features:
        out += feature_observations(f)
        people.add(("dev", f.device_id))
        people |= {("pat", f.patient_id)} if f.patient_id else set()
    for s in scores:
        out.append(score_observation(s))
        people.add(("dev", s.device_id))
    for a in alerts:
        by_alert.setdefault(a.alert_id, []).append(a)
        people.add(("dev", a.device_id))
        people |= {("pat", a.patient_id)} if a.patient_id else set()
    out += [alert_issue(history) for history in by_alert.values()]
    heads = [device(i) if kind == "dev" else patient(i) for kind, i in sorted(people)]
    return heads + out


def transaction(entries: Iterable[Resource]) -> Resource:
    """A transaction Bundle that PUTs every resource by its id (idempotent; a later duplicate wins)."""
    unique = {(r["resourceType"], r["id"]): r for r in entries}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{kind}/{rid}"}} for (kind, rid), r in unique.items()
        ],
    }


def dumps(resource: Resource) -> bytes:
    """Compact JSON bytes of a resource (what goes on the vitals.fhir topic)."""
    return json.dumps(resource, separators=(",", ":"), allow_nan=False).encode()
