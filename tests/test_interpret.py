import json

import numpy as np

from medcolor.cli import main
from medcolor.interpret import per_image_loss


def test_interpret_writes_the_figures(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["interpret", str(runs[2]), "--split", "valid", "--top-losses", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    folder = runs[2] / "interpret-valid"
    assert out["files"] == sorted(f.name for f in folder.iterdir()) or set(out["files"]) == {f.name for f in
                                                                                           folder.iterdir()}
    for f in ("top_losses.png", "top_losses.csv", "confusion.png", "colorizer_gallery.png", "interpretation.json",
              "gradcam_top_losses.png", "gradcam_gallery.png"):
        assert (folder / f).is_file()
    losses = [t["loss"] for t in out["top_losses"]]
    assert len(losses) == 4 and losses == sorted(losses, reverse=True)
    assert out["gradcam"] == ["gradcam_top_losses.png", "gradcam_gallery.png"]
    from medcolor.data import read_table
    from medcolor.recipes import load_recipe

    n_valid = len(read_table(load_recipe("demo").data).split("valid"))
    cm = out["confusion"]["Any finding"]
    assert sum(map(sum, cm)) == n_valid  # every validation image in each label's matrix
    cal = json.loads((runs[2] / "calibration.json").read_text())
    assert out["thresholds"] == cal["thresholds"] and out["threshold_scale"] == "calibrated"  # predict's decisions


def test_interpret_defaults_to_the_test_split_like_evaluate(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["interpret", str(runs[1]), "--top-losses", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test" and (runs[1] / "interpret-test").is_dir()


def test_per_image_loss_ignores_masked_labels():
    probs = np.array([[0.5, 0.99]])
    targets = np.array([[1.0, np.nan]])
    assert np.isclose(per_image_loss(probs, targets)[0], -np.log(0.5))
