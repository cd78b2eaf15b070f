import json

import numpy as np

from medcolor.cli import main
from medcolor.results.interpret import per_image_loss


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
    from medcolor.training.recipes import load_recipe

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


def test_an_rgb_run_is_shown_in_its_colours(tmp_path, capsys, monkeypatch):
    """Top losses and Grad-CAM show what the model reads: the file's RGB pixels, not a gray or normalised copy."""
    import medcolor.results.interpret as interpret
    import medcolor.core.plots as plots
    from fixtures import write_npz

    npz = write_npz(tmp_path / "mm", "dermamnist", n_classes=7, rgb=True)
    assert main(["run", "recipe", "medmnist-finetune", f"data.root={npz.parent}", "data.name=dermamnist",
                 "train.epochs=1", "--runs-dir", str(tmp_path), "--json"]) == 0
    run = json.loads(capsys.readouterr().out.splitlines()[-1])["run_dir"]
    gallery, cams = [], []
    monkeypatch.setattr(interpret, "plot_gallery", lambda path, images, titles, title: gallery.extend(images))
    monkeypatch.setattr(plots, "plot_gradcam", lambda path, images, colorized, *a, **k: cams.append((images,
                                                                                                     colorized)))
    assert main(["interpret", run, "--top-losses", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top_losses"]
    pixels = np.load(npz)["test_images"]
    assert [im.tolist() for im in gallery] == [pixels[int(t["path"].rsplit("/", 1)[1])].tolist() for t in top]
    images, colorized = cams[0]
    assert images.shape == (3, 32, 32, 3) and colorized is None  # no colorizer: no colorizer column
    for shown, t in zip(images, top):  # the 28 px file upsampled to the run's 32 px, normalisation undone
        expected = pixels[int(t["path"].rsplit("/", 1)[1])].mean((0, 1)) / 255
        assert np.abs(shown.mean((0, 1)) - expected).max() < 0.02


def test_labels_map_without_data_is_refused_as_evaluate_refuses_it(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["interpret", str(runs[0]), "--labels-map", "Effusion=Pleural Effusion"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--data" in err[0]
    assert not list(runs[0].glob("interpret-*-2"))  # nothing was drawn
