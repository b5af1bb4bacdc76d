"""NEWS2 (National Early Warning Score 2, Royal College of Physicians 2017), with partial scoring.

Source: Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the assessment
of acute-illness severity in the NHS. Updated report of a working party. London: RCP, 2017 (chart 1,
"The NEWS scoring system", and chart 2, "NEWS thresholds and triggers").

Non-integer measurements: the RCP chart has integer edges for respiration rate, SpO2, systolic BP and
pulse, and 0.1 degC edges for temperature, because that is the resolution at which people record them.
We round a measurement to that resolution, half away from zero, before banding (HR 90.4 -> 90 scores 0,
HR 90.5 -> 91 scores 1; temperature 38.04 -> 38.0 scores 0, 38.05 -> 38.1 scores 1). Rounding goes
through the decimal text of the float, so 38.05 rounds up even though its binary value is 38.04999...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

PARAMETERS = (
    "resp_rate_bpm",
    "spo2_pct",
    "supplemental_o2",
    "sbp_mmhg",
    "heart_rate_bpm",
    "consciousness",
    "temp_c",
)
ACVPU = ("A", "C", "V", "P", "U")

# (upper bound inclusive, score) after rounding; the last row catches everything above.
_RESP_RATE = ((8, 3), (11, 1), (20, 0), (24, 2), (float("inf"), 3))
_SPO2_SCALE1 = ((91, 3), (93, 2), (95, 1), (float("inf"), 0))
_SPO2_SCALE2_LOW = ((83, 3), (85, 2), (87, 1), (92, 0))  # below 93%: oxygen does not matter
_SPO2_SCALE2_ON_O2 = ((94, 1), (96, 2), (float("inf"), 3))  # 93% and above, on oxygen
_SBP = ((90, 3), (100, 2), (110, 1), (219, 0), (float("inf"), 3))
_PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (float("inf"), 3))
_TEMP = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (float("inf"), 2))


@dataclass(frozen=True)
class News2Result:
    """Aggregate score, the parameter scores that could be computed, and what was missing."""

    total: int
    subscores: dict[str, int] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    band: str = "low"
    any_single_3: bool = False


def _round(value: float, step: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(step), rounding=ROUND_HALF_UP)


def _band(value: Decimal, table: tuple[tuple[float, int], ...]) -> int:
    for upper, score in table:
        if upper == float("inf") or value <= Decimal(str(upper)):
            return score
    raise ValueError(f"value {value} above every band")  # unreachable: tables end at +inf


def _spo2_score(spo2_pct: float, scale: int, supplemental_o2: bool | None) -> int | None:
    """SpO2 score, or None when scale 2 needs the oxygen flag and it is unknown."""
    value = _round(spo2_pct, "1")
    if scale == 1:
        return _band(value, _SPO2_SCALE1)
    if value <= 92:
        return _band(value, _SPO2_SCALE2_LOW)
    if supplemental_o2 is None:
        return None
    return _band(value, _SPO2_SCALE2_ON_O2) if supplemental_o2 else 0


def _consciousness_score(consciousness: str) -> int:
    level = consciousness.strip().upper()
    if level not in ACVPU:
        raise ValueError(f"consciousness must be one of {ACVPU} (ACVPU), got {consciousness!r}")
    return 0 if level == "A" else 3  # new confusion (C), V, P and U all score 3


def news2_band(total: int, any_single_3: bool) -> str:
    """RCP chart 2 clinical risk: 7+ high, 5-6 medium, a single red score 3 low-medium, else low."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    return "low-medium" if any_single_3 else "low"


def news2_score(
    *,
    resp_rate_bpm: float | None = None,
    spo2_pct: float | None = None,
    spo2_scale: int = 1,
    supplemental_o2: bool | None = None,
    sbp_mmhg: float | None = None,
    heart_rate_bpm: float | None = None,
    consciousness: str | None = None,
    temp_c: float | None = None,
) -> News2Result:
    """Score what is present and list what is missing (a missing parameter never scores 0 silently).

    >>> news2_score(resp_rate_bpm=22, spo2_pct=95, supplemental_o2=False, sbp_mmhg=105,
    ...             heart_rate_bpm=95, consciousness="A", temp_c=37.0).total
    5
    """
    if spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, got {spo2_scale!r}")
    scores: dict[str, int | None] = {
        "resp_rate_bpm": None if resp_rate_bpm is None else _band(_round(resp_rate_bpm, "1"), _RESP_RATE),
        "spo2_pct": None if spo2_pct is None else _spo2_score(spo2_pct, spo2_scale, supplemental_o2),
        "supplemental_o2": None if supplemental_o2 is None else (2 if supplemental_o2 else 0),
        "sbp_mmhg": None if sbp_mmhg is None else _band(_round(sbp_mmhg, "1"), _SBP),
        "heart_rate_bpm": None if heart_rate_bpm is None else _band(_round(heart_rate_bpm, "1"), _PULSE),
        "consciousness": None if consciousness is None else _consciousness_score(consciousness),
        "temp_c": None if temp_c is None else _band(_round(temp_c, "0.1"), _TEMP),
    }
    subscores = {name: s for name, s in scores.items() if s is not None}
    missing = tuple(name for name, s in scores.items() if s is None)
    total = sum(subscores.values())
    any_single_3 = any(s == 3 for s in subscores.values())
    return News2Result(total, subscores, missing, news2_band(total, any_single_3), any_single_3)
