"""The codes table covers every numeric, waveform and motion field, its codes are well formed, and the schemas carry it."""

from __future__ import annotations

import typing

import pytest

from streamer.contracts import MotionMessage, VitalsMessage, WaveformMessage, json_schemas
from streamer.interop.codes import CODES, MOTION_AXES, NUMERIC_FIELDS, VITAL_FEATURES, WAVEFORM_SIGNALS

pytestmark = pytest.mark.unit


def _loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit: double every other digit from the right, add the digits."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10


def test_every_numeric_waveform_and_motion_field_has_a_row() -> None:
    floats = {n for n, f in VitalsMessage.model_fields.items() if f.annotation == float | None}
    assert floats == set(NUMERIC_FIELDS) and floats <= CODES.keys()
    assert set(typing.get_args(WaveformMessage.model_fields["signal"].annotation)) == set(WAVEFORM_SIGNALS)
    assert set(WAVEFORM_SIGNALS) <= CODES.keys()
    axes = {n for n in MotionMessage.model_fields if n.endswith("_g")}
    assert axes == set(MOTION_AXES) and axes <= CODES.keys()
    assert set(VITAL_FEATURES.values()) <= CODES.keys()


@pytest.mark.parametrize("name", sorted(CODES))
def test_codes_are_well_formed(name: str) -> None:
    code = CODES[name]
    if code.loinc:
        number, _, check = code.loinc.partition("-")
        assert check.isdigit() and _loinc_check_digit(number) == int(check), code.loinc
    assert (code.mdc_refid is None) == (code.mdc_code is None)
    if code.mdc_code is not None:
        assert code.mdc_refid and code.mdc_refid.startswith("MDC_")
        assert code.mdc_code >> 16 == 2  # partition 2 (SCADA): physiological measurements
    assert code.ucum and " " not in code.ucum


def test_check_digit_catches_a_typo() -> None:
    assert _loinc_check_digit("8867") == 4 and _loinc_check_digit("8876") != 4


def test_schemas_carry_the_table() -> None:
    schemas = json_schemas()
    vitals = schemas["vitals"]["properties"]
    for name in NUMERIC_FIELDS:
        codes = vitals[name]["x-codes"]
        assert codes["loinc"] == CODES[name].loinc and codes["ucum"] == CODES[name].ucum
        assert codes["mdc"] == {"refid": CODES[name].mdc_refid, "code": CODES[name].mdc_code}
        assert CODES[name].loinc in vitals[name]["description"]
    by_signal = schemas["waveform"]["properties"]["signal"]["x-codes"]
    assert by_signal["ecg"]["mdc"] == {"refid": "MDC_ECG_ELEC_POTL", "code": CODES["ecg"].mdc_code}
    assert set(by_signal) == set(WAVEFORM_SIGNALS)
    assert schemas["motion"]["properties"]["x_g"]["x-codes"]["ucum"] == "[g]"
