"""Cross-validation end to end through the command line, on the bundled BreastMNIST file (the official one)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medcolor.cli import main

BREAST = ["data.root=package:samples/breastmnist", "data.name=breastmnist"]
TEST_IMAGES = [f"{Path(__file__).resolve().parents[1]}/app/medcolor/samples/breastmnist/breastmnist.npz/test/{i}"
               for i in range(4)]


@pytest.fixture(scope="module")
def cv_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("cv")
    assert main(["run", "recipe", "medmnist-finetune", *BREAST, "--folds", "3", "train.epochs=1",
                 "--runs-dir", str(runs)]) == 0
    (folder,) = runs.glob("*/*-cv3")
    return folder


def test_a_cross_validation_folder_holds_its_folds_and_out_of_fold_predictions(cv_dir):
    from medcolor.results.crossval import fold_assignment
    from medcolor.training.runs import read_recipe

    folds = pd.read_csv(cv_dir / "folds.csv")
    assert sorted(set(folds["fold"])) == [1, 2, 3] and len(folds) == 546 + 78  # train + valid pooled
    assert folds.groupby("group")["fold"].nunique().max() == 1  # no patient in two folds
    assert not folds["image"].str.contains("/test/").any()  # the test split never enters a fold
    recipe = read_recipe(cv_dir)
    assert recipe.data.folds == 3 and recipe.data.fold == 0
    assert fold_assignment(recipe)[0].equals(folds)  # the same seed cuts the same folds again
    oof = pd.read_csv(cv_dir / "oof_predictions.csv")
    assert sorted(oof["path"]) == sorted(folds["image"]) and oof["path"].is_unique
    assert (oof.set_index("path")["fold"].loc[folds["image"]].to_numpy() == folds["fold"].to_numpy()).all()
    runs = sorted(p for p in cv_dir.iterdir() if p.is_dir())
    assert [p.name[-5:] for p in runs] == ["f1of3", "f2of3", "f3of3"]
    for k, run in enumerate(runs, start=1):  # each fold validated on its own fold, and predicted it out of fold
        preds = pd.read_csv(run / "predictions.csv")
        assert preds["path"].str.contains("/test/").all()
        assert json.loads((run / "metrics.json").read_text())["fold"] == k
    m = json.loads((cv_dir / "metrics.json").read_text())
    assert m["finished"] and len(m["fold_test_auc"]) == 3 and m["oof"]["n_images"] == 624
    assert json.loads((cv_dir / "calibration.json").read_text())["fitted_on"] == "out-of-fold"


def test_report_shows_a_cross_validation_as_one_row(cv_dir, capsys):
    capsys.readouterr()
    assert main(["report", str(cv_dir)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| medmnist-finetune")]
    oof = json.loads((cv_dir / "metrics.json").read_text())["oof"]["mean_auc"]
    assert len(rows) == 1 and f"{oof:.4f}" in rows[0] and "| 3 |" in rows[0] and "pooled out-of-fold" in out


def test_predict_with_the_cross_validation_folder_is_the_mean_of_its_folds(cv_dir, tmp_path, capsys):
    assert main(["predict", str(cv_dir), *TEST_IMAGES, "--out", str(tmp_path / "cv.csv")]) == 0
    got = pd.read_csv(tmp_path / "cv.csv")
    members = []
    for k, run in enumerate(sorted(p for p in cv_dir.iterdir() if p.is_dir())):
        assert main(["predict", str(run), *TEST_IMAGES, "--out", str(tmp_path / f"{k}.csv")]) == 0
        members.append(pd.read_csv(tmp_path / f"{k}.csv"))
    p = [c for c in got.columns if c.startswith("p_")]
    assert len(p) == 2 and np.abs(got[p].to_numpy() - np.mean([m[p].to_numpy() for m in members], 0)).max() < 1e-6
    assert main(["export", str(cv_dir), "--out", str(tmp_path / "cv.onnx")]) == 0
    assert json.loads((tmp_path / "cv.onnx.json").read_text())["ensemble_members"] == 3
    assert main(["predict", str(tmp_path / "cv.onnx"), *TEST_IMAGES, "--out", str(tmp_path / "onnx.csv")]) == 0
    onnx = pd.read_csv(tmp_path / "onnx.csv")
    assert np.abs(onnx[p].to_numpy() - got[p].to_numpy()).max() < 1e-5
    decided = [c for c in got.columns if c.startswith("pred_")]
    assert len(decided) == 2 and onnx[decided].equals(got[decided])


def test_a_cross_validation_ensemble_is_evaluated_on_test_only(cv_dir, capsys):
    assert main(["evaluate", str(cv_dir), "--split", "valid"]) == 2
    assert "members trained on every valid image" in capsys.readouterr().err
    assert main(["interpret", str(cv_dir), "--top-losses", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["split"] == "test" and r["gradcam"] == ["gradcam_top_losses.png", "gradcam_gallery.png"]
    assert main(["calibrate", str(cv_dir), "--replace", "--data", "medmnist", *BREAST]) == 2
    assert main(["ensemble", str(cv_dir), "--out", str(cv_dir.parent / "again")]) == 2  # its folds saw each other
    assert "already the ensemble of its folds" in capsys.readouterr().err


def test_a_changed_or_missing_member_is_one_line(cv_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(cv_dir, copy)
    member = sorted(p for p in copy.iterdir() if p.is_dir())[1]
    cal = json.loads((member / "calibration.json").read_text())
    cal["thresholds"] = {k: 0.5 for k in cal["thresholds"]}
    (member / "calibration.json").write_text(json.dumps(cal))
    capsys.readouterr()
    assert main(["predict", str(copy), *TEST_IMAGES]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "member 2" in err and "changed since the ensemble was made" in err
    shutil.rmtree(member)
    assert main(["evaluate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "member 2" in err and "is missing" in err


def test_compare_two_cross_validations_adds_the_corrected_fold_test(cv_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(cv_dir, other)
    oof = pd.read_csv(other / "oof_predictions.csv")
    rng = np.random.default_rng(0)
    p = [c for c in oof.columns if c.startswith("p_")]
    oof[p] = np.clip(oof[p].to_numpy() + rng.normal(0, 0.05, (len(oof), 1)) * [1, -1], 0, 1)
    oof.to_csv(other / "oof_predictions.csv", index=False)
    capsys.readouterr()
    assert main(["compare", str(cv_dir), str(other), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["images"] == "out-of-fold" and r["n_images"] == 624
    f = r["fold_test"]
    assert f["n_folds"] == 3 and f["df"] == 2 and abs(f["test_train_ratio"] - 0.5) < 1e-12
    assert abs(np.mean(f["per_fold_diff"]) - f["mean_diff"]) < 1e-12


def test_folds_and_an_explicit_fold_are_refused(tmp_path, capsys):
    assert main(["run", "recipe", "demo", "--folds", "1", "--runs-dir", str(tmp_path)]) == 2
    assert "--folds must be between 2" in capsys.readouterr().err
    assert main(["run", "recipe", "demo", "data.fold=2", "--folds", "3", "--runs-dir", str(tmp_path)]) == 2
    assert main(["run", "recipe", "demo", "data.folds=3", "--runs-dir", str(tmp_path)]) == 2
    assert "without data.fold" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.json"))


def test_a_sweep_with_folds_lists_its_cross_validations(tmp_path, capsys):
    assert main(["run", "sweep", "demo", "--folds", "3", "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("todo") for line in lines if not line.startswith("recipe "))
