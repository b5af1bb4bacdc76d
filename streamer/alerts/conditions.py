"""Condition rules (enter/exit thresholds, persistence), their IEC 60601-1-8 priorities, and the tracker.

A rule enters when its value meets the enter predicate continuously for ``enter_delay_s`` of event time
and ``enter_count`` consecutive inputs, and exits when the exit predicate holds likewise. The gap
between the enter and exit thresholds is the hysteresis; a value in that gap restarts both runs.
Sources of the defaults (docs/ALARM_BURDEN.md has the whole table):

- Limits on the NEWS2 red edges (RCP NEWS2 2017, chart 1): pulse <=40 or >=131, respiration <=8 or
  >=25, temperature <=35.0; temperature high at >=39.1 (NEWS2's highest temperature band).
- SpO2 < 90%: the usual adult low-limit default of ICU monitors (a convention, not evidence).
- Persistence delays are conventions: a 15 s SpO2 delay follows the delay used in alarm-reduction work
  (Welch J., Biomed Instrum Technol 2011;Suppl:46-52; Taenzer AH et al., Anesthesiology 2010;112:282-7);
  the others are our choice, longer for slow or noisy signals (respiration, temperature).
- Model thresholds come with each score (ScoreRecord.threshold); counts of consecutive windows are ours.

Priorities (IEC 60601-1-8: high = immediate response, medium = prompt response, low = awareness,
info = no alarm): HR_LOW at <=40 bpm and NEWS2_HIGH are high (extreme bradycardia is a red alarm on
bedside monitors; NEWS2 7+ asks for an emergency response); limit, NEWS2 medium and risk-model
alerts are medium; temperature, the anomaly model and signal quality are low. DEVICE_SILENT and
MODEL_UNAVAILABLE are medium technical alarms: each model stands behind a physiological alert (AF,
deterioration, anomaly), so losing it loses that monitoring function and asks for a prompt response.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamer.alerts.news2 import ACVPU, news2_score
from streamer.contracts import Condition, Priority

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Threshold:
    """``value <op> limit``, printable for evidence and messages."""

    op: str
    limit: float

    def __call__(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Between:
    """``low <= value <= high`` (inclusive)."""

    low: float
    high: float

    def __call__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"in [{self.low:g}, {self.high:g}]"


Predicate = Threshold | Between


@dataclass(frozen=True)
class Rule:
    """One condition: which value it reads, where that value comes from, and when it enters and exits."""

    condition: Condition
    priority: Priority
    kind: str  # "physiological" | "model" | "technical"
    value: str  # feature name (or "score" for model rules)
    enter: Predicate
    exit: Predicate
    enter_delay_s: float = 0.0
    exit_delay_s: float = 0.0
    enter_count: int = 1
    exit_count: int = 1
    signal: str | None = None  # the signal whose quality gates this rule
    label: str = ""


def _limit(cond, prio, value, enter, exit_, delay_s, exit_delay_s, signal, label) -> Rule:
    return Rule(cond, prio, "physiological", value, enter, exit_, delay_s, exit_delay_s, 1, 1, signal, label)


C, P = Condition, Priority
LIMIT_RULES: tuple[Rule, ...] = (
    _limit(C.SPO2_LOW, P.MEDIUM, "spo2_pct", Threshold("<", 90), Threshold(">=", 92), 15, 30, "ppg", "SpO2"),
    _limit(C.HR_HIGH, P.MEDIUM, "heart_rate_bpm", Threshold(">=", 131), Threshold("<=", 120), 30, 30, "ecg",
           "heart rate"),
    _limit(C.HR_LOW, P.HIGH, "heart_rate_bpm", Threshold("<=", 40), Threshold(">=", 45), 15, 30, "ecg",
           "heart rate"),
    _limit(C.RESP_RATE_HIGH, P.MEDIUM, "resp_rate_bpm", Threshold(">=", 25), Threshold("<=", 20), 60, 60,
           "resp", "respiration rate"),
    _limit(C.RESP_RATE_LOW, P.MEDIUM, "resp_rate_bpm", Threshold("<=", 8), Threshold(">=", 10), 60, 60,
           "resp", "respiration rate"),
    _limit(C.TEMP_HIGH, P.LOW, "temp_c", Threshold(">=", 39.1), Threshold("<=", 38.5), 120, 300, None,
           "temperature"),
    _limit(C.TEMP_LOW, P.LOW, "temp_c", Threshold("<=", 35.0), Threshold(">=", 35.5), 120, 300, None,
           "temperature"),
)  # fmt: skip
# NEWS2 values are computed by the policy from the numerics window: ``news2_total`` and
# ``news2_trigger`` (the total, but at least 5 when one parameter scores 3: the RCP "medium" trigger).
# NEWS2_MEDIUM enters on a medium trigger that is not yet high; once open it stays open through a
# rise to high (NEWS2_HIGH opens beside it) and closes when the trigger is back to 3 or less.
NEWS2_RULES: tuple[Rule, ...] = (
    _limit(C.NEWS2_MEDIUM, P.MEDIUM, "news2_trigger", Between(5, 6), Threshold("<=", 3), 60, 300, None,
           "NEWS2"),
    _limit(C.NEWS2_HIGH, P.HIGH, "news2_total", Threshold(">=", 7), Threshold("<=", 5), 60, 300, None,
           "NEWS2"),
)  # fmt: skip
PHYSIOLOGICAL_RULES = LIMIT_RULES + NEWS2_RULES

# Model rules read ``score / threshold`` so that one rule serves any calibrated threshold: enter at
# >= 1 (the model's own threshold), exit below 0.8 of it (hysteresis), both over consecutive scores.
MODEL_RULES: dict[str, Rule] = {
    "af": Rule(C.AF_EPISODE, P.MEDIUM, "model", "score_ratio", Threshold(">=", 1.0), Threshold("<", 0.8),
               enter_count=3, exit_count=3, label="AF probability"),
    "sepsis": Rule(C.DETERIORATION_RISK, P.MEDIUM, "model", "score_ratio", Threshold(">=", 1.0),
                   Threshold("<", 0.8), enter_count=1, exit_count=2, label="deterioration risk"),
    "anomaly": Rule(C.ANOMALY, P.LOW, "model", "score_ratio", Threshold(">=", 1.0), Threshold("<", 0.8),
                    enter_count=2, exit_count=2, label="anomaly score"),
}  # fmt: skip
DEFAULT_MODEL_THRESHOLD = 0.5

# Technical conditions. LOW_SIGNAL_QUALITY from windows needs 30 s of low quality to raise and 30 s of good
# quality to clear (windows spoilt by movement come and go; on noisy MIT-BIH 203 a 10 s delay gave one
# episode a minute); suppression of physiological rules is immediate regardless.
LOW_QUALITY_RULE = Rule(C.LOW_SIGNAL_QUALITY, P.LOW, "technical", "low_quality", Threshold(">=", 1),
                        Threshold("<", 1), 30, 30, label="signal quality")  # fmt: skip
TECHNICAL_PRIORITY: dict[Condition, Priority] = {
    C.LOW_SIGNAL_QUALITY: P.LOW,
    C.DEVICE_SILENT: P.MEDIUM,  # a silent wearable means no monitoring at all: prompt response
    C.MODEL_UNAVAILABLE: P.MEDIUM,  # the monitoring behind AF_EPISODE / DETERIORATION_RISK is lost
}

RULES_BY_CONDITION: dict[Condition, Rule] = {
    r.condition: r for r in (*PHYSIOLOGICAL_RULES, *MODEL_RULES.values(), LOW_QUALITY_RULE)
}


def priority_of(condition: Condition) -> Priority:
    """The IEC 60601-1-8 priority of a condition (see the module docstring for the mapping)."""
    rule = RULES_BY_CONDITION.get(condition)
    return TECHNICAL_PRIORITY.get(condition) or (rule.priority if rule else Priority.INFO)


@dataclass
class Track:
    """Per-rule persistence state: JSON-friendly, so the policy can changelog it."""

    active: bool = False
    run_start_ms: int | None = None  # start of the current run of enter (inactive) or exit (active) evidence
    run_count: int = 0
    last_end_ms: int | None = None
    changed_ms: int | None = None  # start of the run that last flipped ``active``: the episode onset

    def restart(self) -> None:
        self.run_start_ms, self.run_count = None, 0


def step(rule: Rule, track: Track, value: float | None, start_ms: int, end_ms: int, max_gap_ms: int) -> str | None:
    """Feed one value covering [start_ms, end_ms]; returns "enter", "exit" or None.

    A missing (or suppressed) value, or a gap longer than ``max_gap_ms`` since the previous value,
    restarts the run: persistence must be seen, not assumed across a hole in the data.
    """
    if value is None:
        track.restart()
        return None
    if track.last_end_ms is not None and start_ms - track.last_end_ms > max_gap_ms:
        track.restart()
    track.last_end_ms = max(end_ms, track.last_end_ms or end_ms)
    predicate, delay_s, count = (
        (rule.exit, rule.exit_delay_s, rule.exit_count)
        if track.active
        else (rule.enter, rule.enter_delay_s, rule.enter_count)
    )
    if not predicate(value):
        track.restart()
        return None
    if track.run_start_ms is None:
        track.run_start_ms = start_ms
    track.run_count += 1
    if end_ms - track.run_start_ms >= delay_s * 1000 and track.run_count >= count:
        track.active, track.changed_ms = not track.active, track.run_start_ms
        track.restart()
        return "enter" if track.active else "exit"
    return None


def news2_values(features: Mapping[str, float | None], vitals: Mapping[str, float | None]) -> dict:
    """NEWS2 rule inputs from a numerics window: the gated vitals plus the window's context features."""
    code, o2, scale = (features.get(k) for k in ("consciousness_code", "supplemental_o2", "spo2_scale"))
    result = news2_score(
        resp_rate_bpm=vitals.get("resp_rate_bpm"),
        spo2_pct=vitals.get("spo2_pct"),
        spo2_scale=2 if scale == 2 else 1,
        supplemental_o2=None if o2 is None else bool(o2),
        sbp_mmhg=features.get("sbp_mmhg"),
        heart_rate_bpm=vitals.get("heart_rate_bpm"),
        consciousness=None if code is None else ACVPU[int(code)],
        temp_c=vitals.get("temp_c"),
    )
    if not result.subscores:
        return {"news2_total": None, "news2_trigger": None}
    trigger = max(result.total, 5) if result.any_single_3 else result.total
    detail = {f"news2_{k}": v for k, v in result.subscores.items()}
    return {"news2_total": result.total, "news2_trigger": trigger, "news2_band": result.band,
            "news2_missing": ",".join(result.missing) or None, **detail}  # fmt: skip


def rule_text(rule: Rule, phase: str) -> str:
    predicate = rule.enter if phase == "enter" else rule.exit
    return f"{rule.value} {predicate} for {held_text(rule, phase)}"


def held_text(rule: Rule, phase: str) -> str:
    enter = phase == "enter"
    delay_s, count = (rule.enter_delay_s, rule.enter_count) if enter else (rule.exit_delay_s, rule.exit_count)
    return f"{count} consecutive scores" if rule.kind == "model" else f"{delay_s:g} s"


def fmt_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def enter_message(rule: Rule, value: float | None, values: Mapping[str, object]) -> str:
    """A short human explanation of why a rule entered."""
    held = held_text(rule, "enter")
    if rule.kind == "model":  # the rule reads score/threshold; people read the score and the threshold
        score, threshold = values.get("score"), values.get("threshold")
        return f"{rule.label} {fmt_value(score)} at or above its threshold {fmt_value(threshold)} for {held}"  # type: ignore[arg-type]
    if not rule.value.startswith("news2"):
        return f"{rule.label} {fmt_value(value)} ({rule.enter}) for at least {held}"
    text = f"NEWS2 {values.get('news2_total')} ({values.get('news2_band')}) for at least {held}"
    return text + (f"; not scored: {values['news2_missing']}" if values.get("news2_missing") else "")
