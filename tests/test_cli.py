import json
from pathlib import Path
import subprocess
import sys

import pytest

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


BAD_INPUT = [  # (arguments, what the one error line says); every case exits 2 and writes nothing
    (["recipes", "validate", "demo", "data.std=0"], "data.std must be positive"),
    (["recipes", "validate", "demo", "train.div=0"], "train.div (max_lr / starting lr) must be positive"),
    (["recipes", "validate", "demo", "train.pct_start=1.5"], "train.pct_start (the warm-up share"),
    (["recipes", "validate", "demo", "data.subset=5"], "data.subset is a mapping"),
    (["recipes", "validate", "demo", "train.bs=1", "model.mode=2"], "train.bs must be at least 2"),
    (["recipes", "validate", "demo", "train.num_workers=-1"], "train.num_workers must be at least 0"),
    (["recipes", "validate", "demo", "data.body_part=XR_HAND"], "data.body_part is not used by data spec 'nih-sample' (only by mura)"),
    (["recipes", "validate", "demo", "data.slices=1:4"], "data.slices is not used by data spec 'nih-sample' (only by ixi)"),
    (["data", "summary", "nih-sample", "frontal_only=true"], "data.frontal_only is not used by data spec 'nih-sample' (only by chexpert)"),
    (["model", "summary", "--image-size", "-64"], "--image-size must be between 8 and 4096"),
    (["model", "summary", "--image-size", "0"], "--image-size must be between 8 and 4096"),
    (["model", "summary", "--n-out", "-3"], "--n-out must be at least 1"),
    (["data", "summary", "nih-sample", "--split", "trian"], "--split must be train, valid or test, got 'trian' (did you mean train?)"),
    (["data", "summary", "folder", "--root", "/"], "cannot list the images under /"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a[:4]) for a, _ in BAD_INPUT])
def test_bad_values_are_one_line_before_anything_runs(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_bad_files_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "bin.yaml").write_bytes(b"\x00\x01binary\xff\xfe")
    (tmp_path / "latin.csv").write_bytes("path,Edema\nscan\xe9.png,1\n".encode("latin-1"))
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "random.safetensors").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "bomb.yaml").write_text('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f'{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n' for p, c in zip("abcdefg", "bcdefgh"))
        + "train: {epochs: *h}\n")
    monkeypatch.setenv("MEDCOLOR_CACHE_DIR", str(tmp_path / "afile"))
    cases = [(["recipes", "validate", str(tmp_path / "bin.yaml")], "is not a text (UTF-8) YAML file"),
             (["recipes", "cp", "demo", str(tmp_path / "afile" / "sub" / "x.yaml")], "Not a directory"),
             (["data", "summary", "csv", "--root", str(tmp_path), "--csv", "latin.csv"], "is not UTF-8 text"),
             (["data", "summary", "csv", "--root", str(tmp_path), "--csv", "empty.csv"], "is empty"),
             (["data", "summary", "csv", "--root", str(tmp_path), "--csv", str(tmp_path)], "is a folder"),
             (["run", "recipe", "demo", f"model.weights={tmp_path / 'empty.pth'}"], "the file is empty"),
             (["run", "recipe", "demo", f"model.weights={tmp_path / 'text.pth'}"], "neither a PyTorch"),
             (["data", "cache", "nih-sample", "--size", "16"], "cannot write the cache"),
             (["recipes", "validate", str(tmp_path / "bomb.yaml")], "and 4 more (9 problems in all)"),
             (["lr-find", "demo", "--num-it", "0", "--runs-dir", str(tmp_path / "runs")], "--num-it must be at least 2"),
             (["run", "recipe", "demo", f"model.weights={tmp_path / 'random.pth'}"], "cannot read weights file"),
             (["run", "recipe", "demo", f"model.weights={tmp_path / 'random.safetensors'}"], "not a safetensors file")]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and message in lines[0] and len(lines[0]) < 2200 and "Traceback" not in err, (args, err[-300:])
    assert not (tmp_path / "runs").exists()


def test_compare_bounds_its_resamples_and_interpret_its_top_losses(demo_runs, capsys):
    _, runs = demo_runs
    assert main(["compare", str(runs[0]), str(runs[1]), "--n-boot", "1000000000"]) == 2
    assert "--n-boot must be between 100" in capsys.readouterr().err
    assert main(["report", str(runs[0]), "--vs", "1", "--vs-plot", str(runs[0].parent / "missing" / "x.png")]) == 2
    assert "cannot create" in capsys.readouterr().err and not (runs[0].parent / "missing").exists()
    assert main(["interpret", str(runs[0]), "--top-losses", "0"]) == 2
    assert "--top-losses must be at least 1" in capsys.readouterr().err
    assert not any(p.name.startswith("interpret") and not any(p.iterdir()) for p in runs[0].iterdir())


def test_summaries_of_a_recipe_report_what_it_trains_on_and_trains(capsys):
    assert main(["data", "summary", "--recipe", "demo", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["splits"]["train"] == s["n_images"] == 570 and s["splits"]["valid"] == 230  # valid_pct 0.35
    assert main(["model", "summary", "--recipe", "demo", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert (m["trainable_params"], m["n_out"], m["image_size"], m["mode"]) == (200_345, 6, 64, 1)
    assert main(["model", "summary", "--recipe", "demo", "model.mode=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trainable_params"] == 3_571_353 - 0  # everything trains


def test_model_colorizers_lists_every_registered_colorizer_with_what_it_is(capsys):
    from medcolor.nets.colorizers import COLORIZERS

    assert main(["model", "colorizers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == COLORIZERS.names() and all(len(line.split()) > 2 for line in lines)
