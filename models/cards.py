"""Model cards rendered from checkpoint metadata, so every figure in a card is the checkpoint's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.checkpoint import WEIGHTS_DIR, load_meta

CARDS_DIR = Path(__file__).resolve().parent / "cards"

CITE = {
    "c17": "Clifford GD, Liu C, Moody B, Lehman LH, Silva I, Li Q, Johnson AE, Mark RG. "
    "AF Classification from a "
    "Short Single Lead ECG Recording: The PhysioNet/Computing in Cardiology Challenge 2017. Computing in "
    "Cardiology 44 (2017).",
    "c19": "Reyna MA, Josef CS, Jeter R, Shashikumar SP, Westover MB, Nemati S, Clifford GD, Sharma A. Early "
    "Prediction of Sepsis From Clinical Data: The PhysioNet/Computing in Cardiology Challenge 2019. Critical "
    "Care Medicine 48(2):210-217 (2020).",
    "mitdb": "Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng Med Biol 20(3):45-50 (2001).",
    "physionet": "Goldberger A, et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220 (2000).",
}


def ci(m: dict[str, float]) -> str:
    return f"{m['value']:.3f} (95% CI {m['ci95_low']:.3f} to {m['ci95_high']:.3f})"


def _header(meta: dict[str, Any]) -> list[str]:
    cfg = meta.get("config") or meta.get("gru_config")
    return [
        f"# Model card: `{meta['name']}` (version `{meta['version']}`)",
        "",
        f"- Task: {meta['task']}.",
        f"- Model: {_kind(meta, cfg)}.",
        f"- Feature version: `{meta['feature_version']}`; thresholds: `{json.dumps(meta['thresholds'])}`.",
        f"- Training data: {meta['data_files']} files, SHA-256 of the files list `{meta['data_sha256']}`.",
        f"- Split: {_split(meta['split'])}.",
        f"- Files: `models/weights/{meta['name']}.{'pkl' if meta.get('kind') == 'trees' else 'pt'}` "
        f"(SHA-256 `{meta['weights_sha256'][:16]}...`) and",
        f"`models/weights/{meta['name']}.json` (all figures below).",
        f"- Reproduce: `python -m models.train {meta['name']}`",
        f"(or `vitalstream train {meta['name']}`), 1 CPU thread.",
        "",
    ]


def _kind(meta: dict[str, Any], cfg: dict[str, Any] | None) -> str:
    if meta.get("kind") == "trees":
        return "gradient-boosted trees (scikit-learn HistGradientBoostingClassifier)"
    return f"GRU {json.dumps(cfg)}"


def _split(split: dict[str, Any]) -> str:
    n = ", ".join(f"{k} {v}" for k, v in split["n"].items())
    return (
        f"by {split['unit']}, stratified by {split['stratified_by']}, seed {split['seed']}, "
        f"fractions {split['fractions']} ({n})"
    )


def render(name: str, weights_dir: Path | None = None) -> str:
    meta = load_meta(name, weights_dir)
    body = {"af": _af, "sepsis": _sepsis, "anomaly": _anomaly}[name](meta)
    return "\n".join(_header(meta) + body) + "\n"


def write(name: str, weights_dir: Path | None = None, cards_dir: Path = CARDS_DIR) -> Path:
    cards_dir.mkdir(parents=True, exist_ok=True)
    path = cards_dir / f"{name}.md"
    path.write_text(render(name, weights_dir or WEIGHTS_DIR))
    return path


def _af_rows(meta: dict[str, Any]) -> list[str]:
    m = meta["metrics"]
    label = "GRU ensemble, RR + morphology (shipped)" if meta.get("gru_ensemble") else "GRU, RR + morphology (shipped)"
    rows = [(label, m["test"], m["val"])]
    if m.get("rr_only"):
        rows.append(("same GRU, morphology hidden (PPG path)", m["rr_only"]["test"], m["rr_only"]["val"]))
    if m.get("trees"):
        rows.append(("trees on per-recording summaries of the same inputs", m["trees"]["test"], m["trees"]["val"]))
    return [
        "| model | F1 of AF, test | mean F1 (N, A, O), test | AUROC AF vs rest, test | mean F1, validation |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {label} | {ci(t['f1_af'])} | {ci(t['f1_mean_nao'])} | {t['auroc_af_vs_rest']} | "
            f"{v['f1_mean_nao']['value']:.3f} |"
            for label, t, v in rows
        ),
    ]


def _previous(meta: dict[str, Any]) -> list[str]:
    prev = meta.get("previous_version")
    if not prev:
        return []
    return [
        f"Shipped over version {prev['version']} (validation mean F1 {prev['val_f1_mean_nao']:.3f} against "
        f"{meta['metrics']['val']['f1_mean_nao']['value']:.3f} now), chosen on validation before test was scored; "
        f"version {prev['version']} on the same test recordings: F1 of AF {prev['test_f1_af']:.3f}, "
        f"mean F1 {prev['test_f1_mean_nao']:.3f}.",
        "",
    ]


def _af(meta: dict[str, Any]) -> list[str]:
    t, v, mit = meta["metrics"]["test"], meta["metrics"]["val"], meta["metrics"].get("mitdb_test_beats")
    trees = meta["metrics"].get("trees")
    lines = [
        "## Data and inputs",
        "Challenge 2017 training subset (2,000 single-lead",
        "AliveCor ECGs at 300 Hz, labels N/A/O/~) and 11 MIT-BIH",
        "Arrhythmia records (rhythm from the `+` annotations;",
        "AFIB and AFL count as AF). Beats come from OUR",
        f"beat detector, {meta['beat_detector']}. One GRU step",
        "per beat: scaled RR, log ratio to the previous RR and its magnitude, and the beat's ECG",
        "morphology from `streamer.features.morphology` (read off the causally filtered ECG exactly as the",
        f"ECG channel does; `FeatureWindow.beat_morph`): {', '.join(meta['inputs'][3:])}.",
        "A quarter of the training sequences are also seen with morphology hidden (valid = 0), so PPG",
        "pulse intervals get an RR-only answer from the same network.",
        *(
            [f"Network: {meta['gru_ensemble']}; served and stepped like a single GRU."]
            if meta.get("gru_ensemble")
            else []
        ),
        f"MIT-BIH records {', '.join(meta['split']['mitdb_train_records'])}",
        "are used for training (240-beat chunks,",
        f"per-beat rhythm targets); records {', '.join(meta['split']['mitdb_test_records'])} are held out.",
        "",
        "## Decision, chosen on validation recordings only",
        f"{meta['selection']}. A recording is AF when P(AF) >= {meta['thresholds']['af']:.2f} (the stream's",
        "alert threshold); otherwise the likeliest of N, O, ~ after log-odds offsets "
        f"{meta['thresholds']['bias_o']:+.2f} (O) and {meta['thresholds']['bias_noisy']:+.2f} (~).",
        "",
        f"## Held-out metrics ({t['n_records']} test recordings, never seen in training or model selection)",
        "Read-out: the decision after the recording's last beat (what the",
        "streaming path emits). 95% CIs: 1,000 bootstrap resamples of test recordings.",
        "",
        *_af_rows(meta),
        "",
        *_previous(meta),
        f"Shipped GRU per class (test): {t['f1_per_class']}; validation: {v['f1_per_class']}.",
        f"Confusion (rows true N/A/O/~, columns predicted): `{t['confusion_rows_true_cols_pred']}`.",
        *([f"Tree baseline thresholds (tuned the same way): `{json.dumps(trees['thresholds'])}`."] if trees else []),
        "",
    ]
    if mit:
        lines += [
            f"MIT-BIH held-out records ({', '.join(mit['records'])}),",
            "streaming read-out after every interval,",
            f"P(AF) >= {meta['thresholds']['af']:.2f}: {mit['n_intervals']}",
            f"intervals ({mit['n_af_intervals']} in AF),",
            f"sensitivity {mit['sensitivity']}, specificity {mit['specificity']}, AUROC {mit['auroc']}.",
            "",
        ]
    return lines + [
        "Published anchors: the challenge winners scored 0.83",
        "mean F1 on the hidden test set using the full ECG",
        "morphology. Our figures are on 20% of the 2,000",
        "shared recordings, so their CIs are wide.",
        "",
        "## Intended use",
        "Screening signal for an AF_EPISODE alert in the",
        "streaming pipeline (stage 4), combined with persistence",
        "rules in the alert policy. Not a diagnostic device; every alert needs clinician review of the ECG.",
        "",
        "## Limitations",
        "- Trained on short (9-61 s) handheld recordings and 11",
        "Holter records only: few patients, few AF episodes.",
        "- Morphology is hand-made per beat (no learned waveform front end: 32 raw waveform bins per beat, with or",
        "  without a running template, were tried as extra inputs and were not better on validation); atrial flutter with regular",
        "  block and frequent ectopy are still confused with AF or O. Quality depends on the beat",
        "detector; the score is only computed on usable windows.",
        "- The decision offsets were tuned on 400 validation recordings; a new device or population may need",
        "  its own.",
        "- In streaming the hidden state runs far longer than the training sequences.",
        "",
        "## Citations",
        f"- {CITE['c17']}",
        f"- {CITE['mitdb']}",
        f"- {CITE['physionet']}",
    ]


def _sepsis(meta: dict[str, Any]) -> list[str]:
    cmp = meta["metrics"]["comparison"]
    rows = []
    for model in ("gru", "trees"):
        for part in ("test", "val"):
            r = cmp[model][part]
            rows.append(
                f"| {model} | {part} ({r['n_patients']} patients, {r['n_septic']} septic) | "
                f"{ci(r['auroc'])} | {ci(r['utility'])} | {r['threshold']:.4f} |"
            )
    served = meta["served"]
    other = {"gru": "trees", "trees": "gru"}
    verdict = "On the test patients"
    agree: list[bool] = []
    for label, key in (("utility", "utility"), ("AUROC", "auroc")):
        test = {k: cmp[k]["test"][key] for k in ("gru", "trees")}
        best = max(test, key=lambda k: test[k]["value"])
        overlap = test["gru"]["ci95_low"] <= test["trees"]["ci95_high"] and (
            test["trees"]["ci95_low"] <= test["gru"]["ci95_high"]
        )
        verdict += (
            f"{',' if agree else ''} {best} scored the higher {label} ({test[best]['value']:.3f} against "
            f"{test[other[best]]['value']:.3f}, 95% CIs {'overlapping' if overlap else 'apart'})"
        )
        agree.append(best == served)
    n_septic = cmp["gru"]["test"]["n_septic"]
    verdict += (
        ": the validation choice and the test agree."
        if all(agree)
        else f": the validation choice and the test {'agree only on utility' if agree[0] else 'disagree'} "
        f"(on {n_septic} septic test patients; where the CIs overlap, no difference is established)."
    )
    return [
        "## Data",
        "PhysioNet/CinC Challenge 2019, training set B subset",
        "(6,000 ICU stays of one hospital system, 334 septic).",
        "Inputs per hour: the 7 vitals HR, O2Sat, Temp, SBP,",
        "MAP, DBP, Resp, carried forward when not measured and",
        "z-scored with training-split statistics, a",
        "measured-this-hour flag for each, hours since each was last measured, the distance of each",
        "z-score from its 4 h and 24 h exponential means (trends), and hours since the stream",
        "began (`models.features.trend_inputs`). Laboratory values are NOT used: the streaming",
        "contract carries no labs, and a model that learned",
        "from them would see them always missing in service.",
        "The tree model also gets the changes of each vital",
        "over 1, 3 and 6 hours (it has no memory); the GRU gets the same hourly inputs without them.",
        *([f"GRU: {meta['gru_ensemble']}."] if meta.get("gru_ensemble") else []),
        "",
        "## GRU against gradient-boosted trees (same patients, same hourly inputs)",
        "Utility: the challenge's normalised clinical utility",
        "(implemented from Reyna et al. 2020, unit-tested on",
        "hand-derived cases). Each model's decision threshold maximises utility on the validation patients.",
        "AUROC over patient-hours. 95% CIs: 1,000 bootstrap resamples of patients.",
        "",
        "| model | patients | AUROC | utility | threshold |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"**Shipped: {served}**, the model with the higher",
        "utility on validation patients (chosen before looking",
        f"at test patients). {verdict} Published anchors: trees won",
        "the challenge (winner 0.360 utility on the hidden test set,",
        "best GRU entry 0.323), and every top entry fell below zero utility on the unseen hospital system.",
        "",
        "## Intended use",
        "A DETERIORATION_RISK information signal in the streaming",
        "pipeline: hourly averages of the numerics windows",
        "step the model once per closed clock hour. Research use only; not validated for clinical decisions.",
        "",
        "## Limitations",
        "- One hospital system: expect a large drop (possibly below zero utility) on another hospital.",
        "- Vitals only, no labs or demographics; hourly ICU charting differs from wearable sampling.",
        "- Hours since the stream began stands in for ICU",
        "length of stay; a stream that starts mid-stay differs.",
        "",
        "## Citations",
        f"- {CITE['c19']}",
        f"- {CITE['physionet']}",
    ]


def _anomaly(meta: dict[str, Any]) -> list[str]:
    m = meta["metrics"]
    target = meta["thresholds"]["target_fpr_per_patient_hour"]
    pre = m.get("test_septic_last_12h_before_onset")
    bidmc = m.get("bidmc_per_minute")
    return [
        "## Data and choice",
        "Challenge 2019 training set B, NON-septic stays only,",
        "hourly vitals (same 7 vitals and patient split as",
        "`sepsis`: its test patients are held out here too).",
        "Chosen over BIDMC 1 Hz numerics because BIDMC has",
        "30 records of 8 minutes (240 patient-minutes), too few to train or to calibrate a false-alarm rate.",
        "The GRU forecasts the next step's z-scored vitals;",
        "the score is the mean squared z-error over the vitals",
        "measured at that step (no score when none is measured).",
        "",
        "## Calibration and held-out false-positive rate",
        f"Threshold = the {100 * (1 - target):.0f}th percentile of validation non-septic patient-hour scores",
        f"(target {target} alarms per patient-hour). On held-out test non-septic patients:",
        "",
        f"- alarms per patient-hour: {ci(m['test']['alarms_per_patient_hour'])}",
        f"over {m['test']['n_scored_hours']}",
        f"  scored hours of {m['test']['n_patients']} patients",
        "(95% CI: 1,000 bootstrap resamples of patients);",
        f"- validation: {ci(m['val']['alarms_per_patient_hour'])}.",
        *(
            [f"- for contrast, septic test patients in the 12 h before onset: {ci(pre['alarms_per_patient_hour'])}."]
            if pre
            else []
        ),
        *(
            [
                "- external check at the streaming cadence, BIDMC ICU monitor numerics "
                f"({bidmc['n_patients']} patients, {bidmc['n_scored_minutes']} scored minutes, per minute): "
                f"{ci(bidmc['alarms_per_patient_minute'])} alarms per patient-minute.",
            ]
            if bidmc
            else []
        ),
        "",
        "## Intended use",
        "An ANOMALY information signal: 'these vitals moved",
        "in a way rarely seen in non-septic ICU stays'. It is",
        "stepped once per numerics window in the stream.",
        "",
        "## Limitations",
        "- Trained on hourly ICU charting; the stream steps it",
        "per 1-minute numerics window, where changes between",
        "  steps are smaller: the per-window alarm rate is not the calibrated per-hour rate.",
        "- Unsupervised: an alarm says unusual, not what is wrong; artefacts are unusual too.",
        "",
        "## Citations",
        f"- {CITE['c19']}",
        f"- {CITE['physionet']}",
    ]
