"""The one table of clinical codes per field: LOINC, UCUM unit and IEEE 11073-10101 (MDC) reference id and code.

Pure data with no imports beyond the standard library: ``streamer.contracts`` puts it into the JSON Schemas
(``x-codes``), ``streamer.interop.fhir`` into every FHIR resource. Where a code is ``None`` we did not find
one we could verify; docs/INTEROP.md cites the source of every code given here and lists the gaps.
An MDC numeric code is ``partition * 2**16 + term code``; all codes here are in partition 2 (SCADA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
MDC_SYSTEM = "urn:iso:std:iso:11073:10101"


@dataclass(frozen=True)
class FieldCode:
    """How one field is coded. ``ucum`` is the UCUM code of the field's unit (the value is never rescaled)."""

    display: str
    ucum: str
    loinc: str | None = None
    mdc_refid: str | None = None
    mdc_code: int | None = None

    def schema_extra(self) -> dict[str, Any]:
        """The ``x-codes`` object of a JSON Schema property."""
        mdc = {"refid": self.mdc_refid, "code": self.mdc_code} if self.mdc_refid else None
        return {"x-codes": {"display": self.display, "loinc": self.loinc, "ucum": self.ucum, "mdc": mdc}}

    def description(self) -> str:
        parts = [f"LOINC {self.loinc}" if self.loinc else "no LOINC code", f"UCUM {self.ucum}"]
        if self.mdc_refid:
            parts.append(f"MDC {self.mdc_refid} ({self.mdc_code})")
        return ", ".join(parts)


_HR = FieldCode("Heart rate", "/min", "8867-4", "MDC_ECG_HEART_RATE", 147842)

# Keyed by the wire field name (VitalsMessage numerics, MotionMessage axes), the waveform signal name
# (WaveformMessage.signal), or the feature name on vitals.features that the FHIR export sends.
CODES: dict[str, FieldCode] = {
    # VitalsMessage numerics.
    "heart_rate_bpm": _HR,
    "spo2_pct": FieldCode("Oxygen saturation by pulse oximetry", "%", "59408-5", "MDC_PULS_OXIM_SAT_O2", 150456),
    "resp_rate_bpm": FieldCode("Respiratory rate", "/min", "9279-1", "MDC_RESP_RATE", 151562),
    "temp_c": FieldCode("Body temperature", "Cel", "8310-5", "MDC_TEMP_BODY", 150364),
    "sbp_mmhg": FieldCode("Systolic blood pressure", "mm[Hg]", "8480-6", "MDC_PRESS_BLD_NONINV_SYS", 150021),
    "dbp_mmhg": FieldCode("Diastolic blood pressure", "mm[Hg]", "8462-4", "MDC_PRESS_BLD_NONINV_DIA", 150022),
    "map_mmhg": FieldCode("Mean blood pressure", "mm[Hg]", "8478-0", "MDC_PRESS_BLD_NONINV_MEAN", 150023),
    # WaveformMessage signals (the sample's unit is the message's ``units``; these are the usual ones).
    "ecg": FieldCode("ECG, lead unspecified", "mV", None, "MDC_ECG_ELEC_POTL", 131328),
    "ppg": FieldCode("Plethysmogram (pulse oximeter)", "1", None, "MDC_PULS_OXIM_PLETH", 150452),
    "resp": FieldCode("Respiration waveform", "1", None, None, None),
    # MotionMessage axes: no LOINC or MDC code verified (docs/INTEROP.md).
    "x_g": FieldCode("Acceleration, x axis", "[g]"),
    "y_g": FieldCode("Acceleration, y axis", "[g]"),
    "z_g": FieldCode("Acceleration, z axis", "[g]"),
    # Derived features on vitals.features.
    "pulse_rate_bpm": FieldCode("Heart rate by pulse oximetry", "/min", "8889-8", "MDC_PULS_OXIM_PULS_RATE", 149530),
    "resp_rate_bpm_ppg": FieldCode("Respiratory rate (from the plethysmogram)", "/min", "9279-1"),
}

# The SpO2 Observation of the FHIR vital-signs profile must also carry the generic oxygen saturation code.
SPO2_PROFILE_LOINC = ("2708-6", "Oxygen saturation in Arterial blood")

# The fields of the wire contracts that the table must cover (tests/interop/test_codes.py checks it).
NUMERIC_FIELDS = ("heart_rate_bpm", "spo2_pct", "resp_rate_bpm", "temp_c", "sbp_mmhg", "dbp_mmhg", "map_mmhg")
WAVEFORM_SIGNALS = ("ecg", "ppg", "resp")
MOTION_AXES = ("x_g", "y_g", "z_g")

# Feature name by window signal -> table key: the features that become vital-sign Observations.
VITAL_FEATURES: dict[tuple[str, str], str] = {
    ("ecg", "heart_rate_bpm"): "heart_rate_bpm",
    ("rr", "heart_rate_bpm"): "heart_rate_bpm",
    ("ppg", "pulse_rate_bpm"): "pulse_rate_bpm",
    ("ppg", "resp_rate_bpm_ppg"): "resp_rate_bpm_ppg",
    ("resp", "resp_rate_bpm"): "resp_rate_bpm",
    **{("numerics", name): name for name in NUMERIC_FIELDS},
}


def code_for(name: str) -> FieldCode:
    """The table row of ``name``; a ``KeyError`` names the field that lacks one."""
    try:
        return CODES[name]
    except KeyError:
        raise KeyError(f"no code in streamer.interop.codes.CODES for field {name!r}") from None


def schema_extra(name: str) -> dict[str, Any]:
    return code_for(name).schema_extra()


def signal_schema_extra(signals: tuple[str, ...]) -> dict[str, Any]:
    """``x-codes`` by signal name, for the ``signal`` property of a waveform chunk."""
    return {"x-codes": {s: code_for(s).schema_extra()["x-codes"] for s in signals}}
