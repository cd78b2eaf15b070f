import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from medcolor.cli import main
from medcolor.core.errors import UsageError


def test_an_ensemble_of_seeds_predicts_the_mean_of_its_members(demo_runs, tmp_path, sample_dir, capsys):
    runs_dir, runs = demo_runs
    images = [str(p) for p in sorted((sample_dir / "images").glob("*.png"))[-12:]]
    assert main(["ensemble", str(runs_dir), "--seeds", "3", "--out", str(tmp_path / "ens")]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 3 seeds" in out and "members" in out
    record = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert record["kind"] == "seeds" and len(record["members"]) == 3
    assert all(len(m["best_sha256"]) == 64 for m in record["members"])  # referenced with checksums, not copied
    assert not list((tmp_path / "ens").glob("*.pth"))
    cal = json.loads((tmp_path / "ens" / "calibration.json").read_text())
    assert set(cal["temperature"].values()) == {1.0} and cal["fitted_on"] == "valid"
    assert main(["predict", str(tmp_path / "ens"), *images, "--out", str(tmp_path / "e.csv")]) == 0
    members = []
    for k, run in enumerate(runs):
        assert main(["predict", str(run), *images, "--out", str(tmp_path / f"{k}.csv")]) == 0
        members.append(pd.read_csv(tmp_path / f"{k}.csv"))
    got = pd.read_csv(tmp_path / "e.csv")
    p = [c for c in got.columns if c.startswith("p_")]
    assert np.abs(got[p].to_numpy() - np.mean([m[p].to_numpy() for m in members], 0)).max() < 1e-6
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["member_mean_auc"]) == 3


def test_ensemble_refuses_mismatched_or_too_few_members(demo_runs, tmp_path, capsys):
    from medcolor.core.config import Network
    from medcolor.core.runfolder import InputSpec, ModelSpec
    from medcolor.training.runs import ensemble_spec

    _, runs = demo_runs
    assert main(["ensemble", str(runs[0]), "--out", str(tmp_path / "one")]) == 2
    assert "at least 2 finished runs" in capsys.readouterr().err and not (tmp_path / "one").exists()
    assert main(["ensemble", str(runs[0].parent), "--seeds", "5", "--out", str(tmp_path / "five")]) == 2
    assert "only 3 seed(s) finished" in capsys.readouterr().err
    a = ModelSpec("classification", ["x", "y"], False, Network(), InputSpec(32, False, 32, 0.5, 0.25))
    with pytest.raises(UsageError, match="b has labels \\['x', 'z'\\] where a has"):
        ensemble_spec([a, replace(a, labels=["x", "z"])], ["a", "b"])
    with pytest.raises(UsageError, match="preprocessing"):
        ensemble_spec([a, replace(a, input=InputSpec(64, False, 64, 0.5, 0.25))], ["a", "b"])
    both = ensemble_spec([a, replace(a, network=Network(colorizer="coloru"))], ["a", "b"])
    assert both.network is None and [n.colorizer for n in both.members] == ["none", "coloru"]
    assert ModelSpec.from_dict(both.to_dict()) == both


def test_run_recipe_with_seeds_ends_with_their_ensemble(tmp_path, capsys):
    tiny = ["train.epochs=1", "train.image_size=32", "train.bs=64", "train.lr_find=false", "data.subset.fraction=0.25"]
    assert main(["run", "recipe", "demo", *tiny, "--seeds", "2", "--runs-dir", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    r = json.loads(out[-1])
    (folder,) = tmp_path.glob("demo/*-s0_1-ensemble")
    assert r["ensemble"]["ensemble_dir"] == str(folder) and len(r["runs"]) == 2
    assert any("ensemble of 2 seeds" in line and "members" in line for line in out)
    members = [run["mean_auc"] for run in r["runs"]]
    assert json.loads((folder / "metrics.json").read_text())["member_mean_auc"] == pytest.approx(members)
