import json
from pathlib import Path
import subprocess
import sys

from medcolor.cli import main


def test_model_summary_json(capsys):
    assert main(["model", "summary", "--colorizer", "coloru", "--mode", "1", "--n-out", "5", "--json",
                 "--image-size", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trainable_params"] == 195_224 and out["total_params"] == 11_371_736
    assert out["backbone"] == "resnet18" and out["colorizer"] == "coloru" and out["mode"] == 1


def test_model_summary_table_shows_colorizer_cost(capsys):
    assert main(["model", "summary", "--colorizer", "deconv"]) == 0
    assert "colorizer adds 104% to the backbone's cost" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert main(["model", "summary", "--colorizer", "rainbow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown colorizer 'rainbow'") and err.count("\n") == 1
    assert main(["model", "summary", "--mode", "4"]) == 2
    assert main(["model", "summary", "--no-such-flag"]) == 2
    assert "error: No such option" in capsys.readouterr().err


def test_console_script_help_and_exit_codes():
    run = subprocess.run([sys.executable, "-m", "medcolor", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "model" in run.stdout
    run = subprocess.run([sys.executable, "-m", "medcolor", "model", "summary", "--backbone", "resnet81"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "did you mean" in run.stderr


def test_data_summary_chexpert_json_with_subset(tmp_path, capsys):
    from fixtures import chexpert
    root = chexpert(tmp_path, n_train=24)
    assert main(["data", "summary", "chexpert", "--csv", str(root / "train.csv"), "subset.fraction=0.5",
                 "subset.seed=8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spec"] == "chexpert" and out["n_images"] == 12
    assert set(out["positives"]) == {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"}


def test_data_summary_nih_sample_out_of_the_box(capsys):
    assert main(["data", "summary", "nih-sample", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 643 and out["positives"]["Any finding"] == 346


def test_data_check_reports_missing_and_corrupt_files(tmp_path, capsys):
    from fixtures import nih
    root = nih(tmp_path)
    assert main(["data", "check", "chestxray14", "--root", str(root)]) == 0
    (root / "images" / "00000000_000.png").unlink()
    (root / "images" / "00000000_001.png").write_bytes(b"garbage")
    assert main(["data", "check", "chestxray14", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "40 images checked: 1 missing" in err and "1 undecodable" in err and "00000000_001.png" in err


def test_data_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    for args in (["data", "summary", "nope"], ["data", "summary", "chexpert", "--root", str(tmp_path)],
                 ["data", "summary", "nih-sample", "subset.fractoin=0.1"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err


def test_a_trained_model_travels_without_its_training_data(tmp_path, capsys):
    """Train on a folder dataset, move the dataset away: predict (same CSV), export, interpret on images and
    evaluate on another copy still work; calibrate says in one line what it needs, and works with --data."""
    import shutil

    import pandas as pd

    from fixtures import folders

    root = folders(tmp_path / "data")
    copy = shutil.copytree(root, tmp_path / "hospital-b" / "xrays")
    runs = tmp_path / "runs"
    assert main(["run", "recipe", "demo", "data.spec=folder", f"data.root={root}", "train.epochs=1",
                 "train.image_size=32", "train.lr_find=false", "--runs-dir", str(runs), "--json"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"]
    images = [str(p) for p in sorted((copy / "valid").rglob("*.png"))]
    assert main(["predict", run, *images, "--out", str(tmp_path / "before.csv")]) == 0
    root.rename(tmp_path / "moved")  # the training data is gone from where the run saw it

    assert main(["predict", run, *images, "--out", str(tmp_path / "after.csv")]) == 0
    assert pd.read_csv(tmp_path / "before.csv").equals(pd.read_csv(tmp_path / "after.csv"))
    for fmt in ("onnx", "torchscript"):
        assert main(["export", run, "--format", fmt]) == 0
    assert main(["interpret", run, *images[:3], "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["gradcam"] == ["gradcam_gallery.png"]
    assert main(["evaluate", run, "--data", "folder", f"data.root={copy}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["auc"]) == {"normal", "pneumonia"} and result["n_images"] == 18 and result["split"] == "all"
    assert (Path(run) / "eval-folder-xrays-all" / "predictions.csv").is_file()

    assert main(["calibrate", run, "--replace"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: calibrate fits on the run's validation images") and "--data" in err
    assert "\n" not in err and "Traceback" not in err
    assert main(["calibrate", run, "--replace", "--data", "folder", f"data.root={copy}"]) == 0
