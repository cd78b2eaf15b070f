import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from medcolor.cli import main
from medcolor.results.evaluate import format_scores
from medcolor.tasks.metrics import label_aucs, mean_of


# evaluate predicts in other batches than the run's end did: another CPU sums in another order, moving
# probabilities by ~1e-6 and, where two are that close, an AUC by one swapped pair (1e-3 on the demo's test split)
PROBABILITY_TOLERANCE, AUC_TOLERANCE = 1e-4, 5e-3


def test_evaluate_reproduces_the_run_metrics(demo_runs, capsys):
    import pandas as pd

    _, runs = demo_runs
    run = runs[0]
    assert main(["evaluate", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    ours, theirs = pd.read_csv(run / "eval-test" / "predictions.csv"), pd.read_csv(run / "predictions.csv")
    assert list(ours["path"]) == list(theirs["path"])  # the same images in the same order: exact
    p = [c for c in theirs if c.startswith("p_")]
    assert (ours[p] - theirs[p]).abs().max().max() < PROBABILITY_TOLERANCE
    assert out["split"] == "test" and out["auc"] == pytest.approx(saved["auc"], abs=AUC_TOLERANCE)
    assert out["acc"] == pytest.approx(saved["acc"], abs=0.01) and "ACC (each label at 0.5)" in format_scores(out)
    assert all((run / "eval-test" / f).is_file() for f in ("predictions.csv", "roc.png", "reliability.png",
                                                          "metrics.json"))
    assert all(out["auc_ci95"][k] == pytest.approx(saved["auc_ci95"][k], abs=AUC_TOLERANCE) for k in saved["auc_ci95"])
    for label, (lo, hi) in out["auc_ci95"].items():
        assert lo <= out["auc"][label] <= hi
    assert out["mean_auc_ci95"][0] <= out["mean_auc"] <= out["mean_auc_ci95"][1]
    assert set(out["ece"]) == set(out["auc"]) == set(out["ece_calibrated"]) and out["threshold_rule"] == "youden"
    for label, point in out["operating_points"].items():
        assert 0 <= point["sensitivity"] <= 1 and 0 <= point["specificity"] <= 1
        assert point["threshold"] == json.loads((run / "calibration.json").read_text())["thresholds"][label]


def test_evaluate_never_overwrites(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["evaluate", str(runs[1]), "--split", "valid"]) == 0
    assert main(["evaluate", str(runs[1]), "--split", "valid"]) == 0
    assert (runs[1] / "eval-valid").is_dir() and (runs[1] / "eval-valid-2").is_dir()
    assert "mean" in capsys.readouterr().out


def test_a_label_with_one_class_is_skipped_with_a_warning():
    targets = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=float)
    probs = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.2], [0.1, 0.4]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aucs = label_aucs(probs, targets, ["A", "B"])
    assert aucs["A"] == 1.0 and np.isnan(aucs["B"]) and mean_of(aucs) == 1.0
    assert "AUC of 'B' skipped: only one class" in str(caught[0].message)


def test_masked_targets_are_left_out():
    targets = np.array([[1], [0], [np.nan], [0]])
    probs = np.array([[0.9], [0.2], [0.0], [0.4]])
    assert label_aucs(probs, targets, ["A"])["A"] == 1.0


def test_evaluate_bad_folder(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_predict_gives_probabilities_for_new_images(demo_runs, tmp_path, sample_dir, capsys):
    import shutil

    import pandas as pd

    _, runs = demo_runs
    folder = tmp_path / "new"
    folder.mkdir()
    for p in sorted((sample_dir / "images").glob("*.png"))[:5]:
        shutil.copy(p, folder / p.name)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(runs[0]), str(folder), "--out", str(out)]) == 0
    preds = pd.read_csv(out)
    assert len(preds) == 5 and preds.filter(like="p_").shape[1] == 6 and preds.filter(like="pred_").shape[1] == 6
    assert ((preds.filter(like="p_") >= 0) & (preds.filter(like="p_") <= 1)).all().all()
    assert list(preds.columns[1:3]) == ["p_Atelectasis", "pred_Atelectasis"]
    assert main(["predict", str(runs[0]), str(folder), "--out", str(out)]) == 2  # never overwrites
    assert main(["predict", str(runs[0]), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("logger,module", [("tensorboard", "fastai.callback.tensorboard"), ("wandb", "wandb")])
def test_a_missing_logger_extra_is_named_before_any_run_folder(tmp_path, capsys, monkeypatch, logger, module):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if the optional package were not installed
    assert main(["run", "recipe", "demo", f"train.loggers=[csv, {logger}]", "train.epochs=1",
                 "train.image_size=32", "train.lr_find=false", "--runs-dir", str(tmp_path)]) == 2
    assert f"pip install 'medcolor[{logger}]'" in capsys.readouterr().err and not (tmp_path / "demo").exists()


def test_predict_applies_the_saved_temperature_and_thresholds(demo_runs, tmp_path, sample_dir, capsys):
    import shutil

    import pandas as pd

    from medcolor.tasks.calibration import calibrate

    _, runs = demo_runs
    bare = tmp_path / runs[2].name
    shutil.copytree(runs[2], bare, ignore=shutil.ignore_patterns("calibration.json"))
    images = [str(p) for p in sorted((sample_dir / "images").glob("*.png"))[:6]]
    assert main(["predict", str(runs[2]), *images, "--out", str(tmp_path / "cal.csv")]) == 0
    assert main(["predict", str(bare), *images, "--out", str(tmp_path / "raw.csv")]) == 0
    assert "has no calibration.json" in capsys.readouterr().err
    cal = json.loads((runs[2] / "calibration.json").read_text())
    labels = list(cal["thresholds"])
    calibrated, raw = pd.read_csv(tmp_path / "cal.csv"), pd.read_csv(tmp_path / "raw.csv")
    expected = calibrate(raw[[f"p_{lab}" for lab in labels]].to_numpy(), cal, labels)
    assert np.allclose(calibrated[[f"p_{lab}" for lab in labels]].to_numpy(), expected, atol=1e-6)
    assert not raw.filter(like="pred_").shape[1]
    for lab in labels:  # Youden thresholds sit on validation probabilities: allow for the CSV's rounding
        p, thr = calibrated[f"p_{lab}"], cal["thresholds"][lab]
        clear = (p - thr).abs() > 1e-6
        assert (calibrated[f"pred_{lab}"][clear] == (p[clear] >= thr)).all()


def test_calibrate_refits_only_when_asked(demo_runs, tmp_path, capsys):
    import shutil

    _, runs = demo_runs
    run = tmp_path / runs[1].name
    shutil.copytree(runs[1], run)
    assert main(["calibrate", str(run), "--sensitivity", "0.9"]) == 2
    assert "add --replace" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--sensitivity", "0.9", "--replace", "--json"]) == 0
    cal = json.loads(capsys.readouterr().out)
    assert cal["threshold_rule"] == "sensitivity:0.9" == json.loads((run / "calibration.json").read_text())["threshold_rule"]
    assert main(["calibrate", str(run), "--sensitivity", "0.9", "--specificity", "0.5", "--replace"]) == 2


def test_predict_checks_its_inputs_and_output_before_loading_the_model(tmp_path, sample_dir, capsys):
    image = str(sorted((sample_dir / "images").glob("*.png"))[0])
    (tmp_path / "x.png").write_text("not an image")
    no_run = str(tmp_path / "no-run")  # never reached: the checks come first
    cases = [([image, "--out", str(tmp_path / "missing" / "p.csv")], "does not exist; create it first"),
             ([image, "--out", str(tmp_path / "x.png" / "p.csv")], "is a file, not a folder"),
             ([str(tmp_path / "x.png")], "x.png cannot be decoded as an image (UnidentifiedImageError)")]
    for args, message in cases:
        assert main(["predict", no_run, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def chexpert_copy_of_the_sample_test_split(tmp_path, sample_dir):
    """The bundled sample's test split in the CheXpert-v1.0-small layout: the same images, its Effusion column
    named `Pleural Effusion`, no `Any finding` (CheXpert has none), every CheXpert column present."""
    import shutil

    import pandas as pd

    from fixtures import CHEXPERT_COLUMNS
    from medcolor.data import load_data_config, read_table

    table = read_table(load_data_config("nih-sample"))
    test = table.split("test")
    root = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for i, r in enumerate(test.itertuples()):
        rel = f"CheXpert-v1.0-small/valid/patient{int(r.group):05d}/study1/view{i}_frontal.png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, tmp_path / rel)
        rows.append({"Path": rel, "Sex": "Male", "Age": 50, "Frontal/Lateral": "Frontal", "AP/PA": "PA",
                     **{c: 0.0 for c in CHEXPERT_COLUMNS[5:]}, "Atelectasis": r.Atelectasis,
                     "Cardiomegaly": r.Cardiomegaly, "Consolidation": r.Consolidation, "Edema": r.Edema,
                     "Pleural Effusion": r.Effusion})
    pd.DataFrame(rows, columns=CHEXPERT_COLUMNS).to_csv(root / "valid.csv", index=False)  # no train.csv needed
    return root


def test_external_validation_scores_the_shared_labels_under_the_runs_names(demo_runs, tmp_path, sample_dir, capsys):
    _, runs = demo_runs
    root = chexpert_copy_of_the_sample_test_split(tmp_path, sample_dir)
    assert main(["evaluate", str(runs[0]), "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(runs[0]), "--data", "chexpert", f"data.root={root}", "--json"]) == 0
    captured = capsys.readouterr()
    external = json.loads(captured.out)
    shared = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion"]
    assert list(external["auc"]) == shared and external["labels_left_out"] == ["Any finding"]
    assert "has no Any finding: left out" in captured.err
    assert external["n_images"] == own["n_images"] == 200 and external["split"] == "test"
    for label in shared:  # the same images and targets: the same AUCs as the run's own evaluation
        assert external["auc"][label] == pytest.approx(own["auc"][label], abs=1e-9)
        assert external["operating_points"][label] == own["operating_points"][label]
    out = runs[0] / "eval-chexpert-CheXpert-v1.0-small-test"
    assert (out / "predictions.csv").is_file() and (out / "roc.png").is_file() and (out / "reliability.png").is_file()
    assert main(["evaluate", str(runs[1]), "--data", "chexpert", f"data.root={root}"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(runs[1] / "eval-chexpert-CheXpert-v1.0-small-test"), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["labels"]) == shared
    assert main(["interpret", str(runs[0]), "--data", "chexpert", f"data.root={root}", "--top-losses", "2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out_dir"].endswith("interpret-chexpert-CheXpert-v1.0-small-test")


def test_external_validation_without_a_shared_label_is_one_error_line(demo_runs, tmp_path, capsys):
    from fixtures import mura

    _, runs = demo_runs
    root = mura(tmp_path)
    assert main(["evaluate", str(runs[0]), "--data", "mura", f"data.root={root}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no label of the run") and "--labels-map" in err and err.count("\n") == 1
    assert not any(p.name.startswith("eval-mura") for p in runs[0].iterdir())
    assert main(["evaluate", str(runs[0]), "--data", "mura", f"data.root={root}", "--labels-map",
                 "Any finding=Abnormal", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["auc"]) == ["Any finding"]
    assert main(["evaluate", str(runs[0]), "data.root=x"]) == 2
    assert "go with --data" in capsys.readouterr().err


def test_tta_zero_is_plain_evaluate_and_tta_lists_no_flip(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["evaluate", str(runs[2]), "--tta", "0", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["tta"] is None and "without_tta" not in plain
    assert main(["evaluate", str(runs[2]), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["auc"] == plain["auc"]
    assert main(["evaluate", str(runs[2]), "--tta", "4", "--json"]) == 0
    tta = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert tta["tta"]["passes"] == 4 and not tta["tta"]["flips"]
    assert not any("flip" in t.lower() for t in tta["tta"]["transforms"])
    assert tta["without_tta"]["auc"] == plain["auc"] and tta["auc"] != plain["auc"]
    assert tta["out_dir"].endswith("eval-test-tta4")
    assert "no TTA" in format_scores(tta)
    assert main(["evaluate", str(runs[2]), "--tta", "-1"]) == 2


def test_scoring_the_valid_split_of_data_without_a_test_split_says_it_is_optimistic(demo_runs, tmp_path, capsys):
    """Without a test split, evaluate and interpret fall back to valid: the split that chose best.pth and fitted
    the calibration. They must say so, not pass it off as a held-out score."""
    import shutil

    import yaml

    _, runs = demo_runs
    run = Path(shutil.copytree(runs[0], tmp_path / "runs" / "demo" / runs[0].name))
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    saved["data"]["use_test"] = False  # as a dataset without a test split reads
    (run / "recipe.yaml").write_text(yaml.safe_dump(saved))
    assert main(["evaluate", str(run)]) == 0
    captured = capsys.readouterr()
    assert "warning: nih-sample data has no test split: scoring the valid split" in captured.err
    assert "optimistic scores" in captured.out and "230 images" in captured.out
    assert main(["interpret", str(run), "--top-losses", "2"]) == 0
    assert "scoring the valid split, which chose the best epoch" in capsys.readouterr().err
