import json
import shutil

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medcolor.cli import main

LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"]


def test_compare_two_demo_runs(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["compare", str(runs[0]), str(runs[1]), "--n-boot", "500", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    a, b = (pd.read_csv(run / "predictions.csv") for run in runs[:2])
    b = b.set_index("path").loc[a["path"]]
    for lab in LABELS:
        v = r["labels"][lab]
        assert v["auc_a"] == pytest.approx(roc_auc_score(a[lab], a[f"p_{lab}"]))
        assert v["auc_b"] == pytest.approx(roc_auc_score(b[lab], b[f"p_{lab}"]))
        assert v["ci95"][0] <= v["diff"] <= v["ci95"][1] and 0 <= v["p_delong"] <= 1
    mean = r["mean"]
    assert mean["diff"] == pytest.approx(mean["auc_a"] - mean["auc_b"])
    assert mean["ci95"][0] <= mean["diff"] <= mean["ci95"][1]
    assert r["n_images"] == 200 and r["n_groups"] < 200  # the NIH test list has several images per patient


def test_compare_prints_a_table(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["compare", str(runs[0]), str(runs[0]), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "DeLong p" in out and "+0.0000" in out and "paired bootstrap resamples of groups" in out


def test_runs_on_different_images_are_refused(demo_runs, tmp_path, capsys):
    _, runs = demo_runs
    other = tmp_path / runs[1].name
    shutil.copytree(runs[1], other)
    preds = pd.read_csv(other / "predictions.csv")
    preds.iloc[5:].to_csv(other / "predictions.csv", index=False)
    assert main(["compare", str(runs[0]), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "different images (5 only in" in err and len(err.splitlines()) == 1


def test_compare_needs_finished_runs(demo_runs, tmp_path, capsys):
    _, runs = demo_runs
    assert main(["compare", str(runs[0]), str(tmp_path)]) == 2
    assert "is not a finished run folder" in capsys.readouterr().err


def test_titles_name_the_recipe_colorizer_mode_and_seed(demo_runs, capsys, monkeypatch):
    import medcolor.results.evaluate as evaluate

    _, runs = demo_runs
    titles = []
    monkeypatch.setattr(evaluate, "plot_roc", lambda path, curves, title: titles.append(title))
    assert main(["evaluate", str(runs[1]), "--split", "valid"]) == 0
    assert titles and titles[0].startswith("demo: efficientnet_lite0 + coloru colorizer, mode 1, seed 1")
    assert main(["compare", str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert "A = demo: efficientnet_lite0 + coloru colorizer, mode 1, seed 0" in out and "seed 1" in out
