import json
import warnings

import numpy as np
import pytest

from medcolor.cli import main
from medcolor.metrics import label_aucs, mean_of


def test_evaluate_reproduces_the_run_metrics(demo_runs, capsys):
    _, runs = demo_runs
    run = runs[0]
    assert main(["evaluate", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    assert out["split"] == "test" and out["auc"] == pytest.approx(saved["auc"])
    assert all((run / "eval-test" / f).is_file() for f in ("predictions.csv", "roc.png", "metrics.json"))


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
