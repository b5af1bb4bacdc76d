"""``vitalstream eval af|sepsis --json`` on folders in the shared-data layout: one JSON object on stdout."""

from __future__ import annotations

import json

import pytest

from models.datasets import challenge2017_labels, data_dir, sepsis_files
from streamer.cli.main import main

pytestmark = pytest.mark.unit


def test_eval_sepsis_json_on_a_folder_without_index(tmp_path, capsys) -> None:
    source = data_dir() / "challenge2019_sepsis"
    files = sepsis_files(source)
    picked = [f for f in files[:100] if not _septic(f)][:20] + [f for f in files[:400] if _septic(f)][:3]
    (tmp_path / "training_setX").mkdir()
    for f in picked:
        (tmp_path / "training_setX" / f.name).symlink_to(f.resolve())
    assert main(["eval", "sepsis", "--data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_patients"] == len(picked) and out["n_septic"] == 3
    assert 0.0 <= out["auroc"] <= 1.0 and out["utility"] <= 1.0
    assert out["model"] == "sepsis" and out["version"]


def test_eval_af_json(tmp_path, capsys) -> None:
    source = data_dir() / "challenge2017_af"
    labels = challenge2017_labels(source)
    names = [n for n in sorted(labels) if labels[n] == "A"][:4] + [n for n in sorted(labels) if labels[n] == "N"][:6]
    (tmp_path / "REFERENCE.csv").write_text("".join(f"{n},{labels[n]}\n" for n in names))
    for n in names:
        (tmp_path / f"{n}.mat").symlink_to((source / f"{n}.mat").resolve())
    assert main(["eval", "af", "--data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_records"] == 10
    assert 0.0 <= out["f1_af"] <= 1.0 and 0.0 <= out["f1_mean_nao"] <= 1.0
    assert sum(map(sum, out["confusion_rows_true_cols_pred"])) == 10


def _septic(path) -> bool:
    return "|1\n" in path.read_text() or path.read_text().rstrip().endswith("|1")


def test_vitalstream_train_is_the_same_command(tmp_path, capsys) -> None:
    assert main(["train", "anomaly", "--quick", "--weights-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    meta = json.loads((tmp_path / "anomaly.json").read_text())
    assert printed.startswith(f"anomaly {meta['version']}: ")
    assert json.loads(printed.split(": ", 1)[1])["n_patients"] == meta["metrics"]["test"]["n_patients"]
