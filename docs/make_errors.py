"""Regenerates docs/errors.md: every bad input we tried, the exact message medcolor prints and its exit code.

Run with the venv's python from the repository root: `.venv/bin/python docs/make_errors.py`.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import chexpert, folders, ixi, nih, write_npz  # noqa: E402

EXE = str(Path(sys.executable).parent / "medcolor")


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    cx = chexpert(tmp / "cx", n_train=6)
    bad_values = chexpert(tmp / "cv", n_train=4, values=[{"Edema": 2.0}, {}, {}, {}])
    pd.read_csv(cx / "train.csv").drop(columns=["Edema"]).to_csv(tmp / "no_edema.csv", index=False)
    ny = nih(tmp / "ny")
    (ny / "images" / "00000000_001.png").write_bytes(b"garbage")
    (ny / "images" / "00000000_000.png").unlink()
    escape = tmp / "escape"
    escape.mkdir()
    pd.DataFrame({"path": ["../../etc/passwd"], "Edema": [1]}).to_csv(escape / "labels.csv", index=False)
    empty = folders(tmp / "fo", split_layout=False)
    vols = ixi(tmp / "ix", n_subjects=3)
    (tmp / "file").write_text("x")
    one_class = tmp / "oneclass"
    for rel in ("train/a", "train/b", "valid/a"):
        folders_like = one_class / rel
        folders_like.mkdir(parents=True)
        for i in range(3):
            (folders_like / f"{i}.png").write_bytes((cx.parent / "CheXpert-v1.0-small/train/patient00000/study1/view1_lateral.jpg").read_bytes())
    lists_missing = tmp / "nolists"
    lists_missing.mkdir()
    (lists_missing / "Data_Entry_2017.csv").write_bytes((ny / "Data_Entry_2017.csv").read_bytes())
    import timm
    import torch
    torch.save(timm.create_model("resnet18").state_dict(), tmp / "resnet18.pth")
    subprocess.run([EXE, "run", "recipe", "demo", "train.epochs=1", "train.image_size=32", "train.lr_find=false",
                    "--runs-dir", str(tmp / "ok")], capture_output=True, check=True)
    run = next((tmp / "ok" / "demo").iterdir())
    (tmp / "text.png").write_text("not an image")
    (tmp / "recipe_dir").mkdir()
    (tmp / "cut.pth").write_bytes((run / "last.pth").read_bytes()[:5000])
    csv_holes = tmp / "holes"
    csv_holes.mkdir()
    (csv_holes / "labels.csv").write_text("path,Edema\nscan0.png,1\n,0\n")
    (tmp / "bad.yaml").write_text("train: [unclosed\n")
    (tmp / "fields.yaml").write_text("data: {spec: nih-sample}\ntrain: {epochs: many, bs: 1.5, lr: 3}\n"
                                     "model: {pretrained: yes please}\n")
    from fixtures import mura
    mu = mura(tmp / "mu")
    import numpy as np
    write_npz(tmp / "mm", "pneumoniamnist", drop="val_labels")
    (tmp / "typo-space.yaml").write_text("train.max_lrr: {log: [1.0e-4, 1.0e-1]}\n")
    (tmp / "empty-space.yaml").write_text("train.max_lr: {log: [1.0e-4, 1.0e-1]}\nmodel.colorizer: {choice: []}\n")
    (tmp / "refused-space.yaml").write_text("model.colorizer: {choice: [none, coloruu]}\ntrain.epochs: {int: [0, 5]}\n")
    write_npz(tmp / "mm", "organamnist", n_classes=11, train_images=np.zeros((48, 28, 27), np.uint8))
    write_npz(tmp / "mm", "dermamnist", n_classes=7, rgb=True)
    (tmp / "alone.onnx").write_bytes(b"onnx")
    moved = folders(tmp / "fd")
    subprocess.run([EXE, "run", "recipe", "demo", "data.spec=folder", f"data.root={moved}", "train.epochs=1",
                    "train.image_size=32", "train.lr_find=false", "--runs-dir", str(tmp / "fr")], capture_output=True,
                   check=True)
    folder_run = next((tmp / "fr").glob("demo@*/*"))
    moved.rename(tmp / "fd" / "moved-away")
    linked = folders(tmp / "ln")
    (linked / "train" / "elsewhere").symlink_to(tmp / "fo")
    leak = tmp / "leak"
    leak.mkdir()
    pd.DataFrame({"path": ["a.png", "b.png", "a.png"], "split": ["train", "valid", "test"],
                  "Edema": [1, 0, 1]}).to_csv(leak / "labels.csv", index=False)
    (tmp / "bin.yaml").write_bytes(b"\x00\x01\xff\xfe")
    (tmp / "latin.csv").write_bytes("path,Edema\nscan\xe9.png,1\n".encode("latin-1"))
    (tmp / "empty.pth").write_bytes(b"")
    return [
        ("unknown recipe", ["run", "recipe", "dmeo"]),
        ("unknown override key", ["run", "recipe", "demo", "train.epoch=1"]),
        ("override without =", ["recipes", "show", "demo", "train.epochs"]),
        ("wrong override type", ["recipes", "validate", "demo", "train.epochs=many"]),
        ("recipe file that is not valid YAML", ["recipes", "validate", str(tmp / "bad.yaml")]),
        ("several bad fields", ["recipes", "validate", str(tmp / "fields.yaml")]),
        ("copy over an existing file", ["recipes", "cp", "demo", str(tmp / "file")]),
        ("image size a colorizer cannot take", ["run", "recipe", "demo", "train.image_size=36"]),
        ("dataset folder not given", ["run", "recipe", "chexpert-colorU-mode1"]),
        ("ImageNet weights without a network", ["run", "recipe", "chexpert-colorU-mode1", f"data.root={cx}"]),
        ("weights file that does not exist", ["run", "recipe", "demo", "model.weights=/nope/w.pth"]),
        ("unknown backbone", ["model", "summary", "--backbone", "resnet81"]),
        ("unknown colorizer", ["model", "summary", "--colorizer", "rainbow"]),
        ("unknown data spec", ["data", "summary", "chexpret"]),
        ("missing label CSV", ["data", "summary", "chexpert", "--root", str(tmp)]),
        ("missing columns", ["data", "summary", "chexpert", "--csv", str(tmp / "no_edema.csv")]),
        ("label value outside 1 / 0 / -1 / blank", ["data", "summary", "chexpert", "--root", str(bad_values)]),
        ("unknown label", ["data", "summary", "chestxray14", "--root", str(ny), "labels=[Edema, Fracturee]"]),
        ("missing and corrupt images", ["data", "check", "chestxray14", "--root", str(ny)]),
        ("missing images at training time", ["run", "recipe", "demo", "data.spec=chestxray14", f"data.root={ny}"]),
        ("paths that leave the dataset", ["data", "summary", "csv", "--root", str(escape)]),
        ("empty validation split", ["data", "summary", "folder", "--root", str(empty), "valid_pct=0", "--split", "valid"]),
        ("slice range beyond a volume", ["data", "summary", "ixi", "--root", str(vols), "slices=5:40"]),
        ("runs folder that cannot be created", ["run", "recipe", "demo", "--runs-dir", str(tmp / "file" / "runs")]),
        ("resume from a folder that is no run", ["run", "recipe", "demo", "--resume", str(tmp)]),
        ("evaluate a folder that is no run", ["evaluate", str(tmp)]),
        ("NaN loss", ["run", "recipe", "demo", "train.epochs=2", "train.image_size=32", "train.max_lr=1e12",
                      "train.lr_find=false", "--runs-dir", str(tmp / "runs")]),
        ("bad --shard", ["run", "sweep", "table5-1", "--shard", "3/2"]),
        ("report with no runs", ["report", str(tmp / "fo")]),
        ("unknown option", ["model", "summary", "--no-such-flag"]),
        ("label table that does not exist", ["data", "summary", "chestxray14", "--csv", str(tmp / "nope.csv")]),
        ("training without the ChestX-ray14 split lists", ["run", "recipe", "demo", "data.spec=chestxray14",
                                                           f"data.root={lists_missing}"]),
        ("one class in the validation split", ["run", "recipe", "demo", "data.spec=folder", f"data.root={one_class}"]),
        ("weights that fit neither by name nor by position", ["run", "recipe", "demo",
                                                              f"model.weights={tmp / 'resnet18.pth'}"]),
        ("weights package that is not installed", ["run", "recipe", "demo", "model.weights=package:no_such_weights"]),
        ("ImageNet weight tag that timm does not have", ["recipes", "validate", "chexpert-deconv-mode1",
                                                         "model.pretrained_tag=nope"]),
        ("compare a folder that is no run", ["compare", str(tmp), str(tmp)]),
        ("calibrate to an impossible sensitivity", ["calibrate", str(tmp), "--sensitivity", "1.5"]),
        ("report --vs with an unknown field", ["report", str(tmp / "runs"), "--vs", "colour=none"]),
        ("resume a finished run (exit 0, nothing written)", ["run", "recipe", "demo", "--resume", str(run)]),
        ("--seeds 0", ["run", "recipe", "demo", "--seeds", "0"]),
        ("recipe path that is a folder", ["run", "recipe", str(tmp / "recipe_dir")]),
        ("recipe whose data is a list", ["run", "recipe", "demo", "data=[1, 2]"]),
        ("image size beyond any memory", ["run", "recipe", "demo", "train.image_size=100000"]),
        ("csv rows without a path", ["data", "summary", "csv", "--root", str(csv_holes)]),
        ("csv spec with a label-set name from the recipe", ["run", "recipe", "demo", "data.spec=csv",
                                                           f"data.root={csv_holes}"]),
        ("predict a text file named .png", ["predict", str(run), str(tmp / "text.png")]),
        ("predict --out into a missing folder", ["predict", str(run), str(tmp / "text.png"), "--out",
                                                 str(tmp / "nope" / "p.csv")]),
        ("predict --out under a file", ["predict", str(run), str(tmp / "text.png"), "--out",
                                        str(tmp / "text.png" / "p.csv")]),
        ("truncated checkpoint", ["run", "recipe", "demo", "model.weights=" + str(tmp / "cut.pth")]),
        ("export to an unknown format", ["export", str(run), "--format", "tflite"]),
        ("external validation without a shared label", ["evaluate", str(run), "--data", "mura", f"data.root={mu}"]),
        ("--labels-map without =", ["evaluate", str(run), "--data", "mura", f"data.root={mu}", "--labels-map",
                                    "Edema"]),
        ("data fields without --data", ["evaluate", str(run), "data.root=/x"]),
        ("evaluate a run whose data has moved", ["evaluate", str(folder_run)]),
        ("calibrate a run whose validation images have moved", ["calibrate", str(folder_run), "--replace"]),
        ("predict with an exported file without its sidecar", ["predict", str(tmp / "alone.onnx"),
                                                               str(next((tmp / "fd").rglob("*.png")))]),
        ("recipe name that is a path", ["run", "recipe", "demo", "name=../../x", "--runs-dir", str(tmp / "runs")]),
        ("a class folder linked to outside the dataset", ["data", "check", "folder", "--root", str(linked)]),
        ("an image in train and test", ["data", "check", "csv", "--root", str(leak), "split_col=split"]),
        ("data.std=0", ["run", "recipe", "demo", "data.std=0"]),
        ("train.pct_start=1.5", ["run", "recipe", "demo", "train.pct_start=1.5"]),
        ("train.bs=1", ["run", "recipe", "demo", "train.bs=1", "model.mode=2"]),
        ("a field the data spec does not use", ["run", "recipe", "demo", "data.body_part=XR_HAND"]),
        ("--resume with overrides", ["run", "recipe", "demo", "--resume", str(run), "train.epochs=3"]),
        ("compare with a billion resamples", ["compare", str(run), str(run), "--n-boot", "1000000000"]),
        ("interpret --top-losses 0", ["interpret", str(run), "--top-losses", "0"]),
        ("lr-find --num-it 0", ["lr-find", "demo", "--num-it", "0", "--runs-dir", str(tmp / "runs")]),
        ("a binary recipe file", ["recipes", "validate", str(tmp / "bin.yaml")]),
        ("a Latin-1 label table", ["data", "summary", "csv", "--root", str(tmp), "--csv", "latin.csv"]),
        ("an empty weights file", ["run", "recipe", "demo", f"model.weights={tmp / 'empty.pth'}"]),
        ("data summary of the whole disk", ["data", "summary", "folder", "--root", "/"]),
        ("--split with a typo", ["data", "summary", "nih-sample", "--split", "trian"]),
        ("model summary --image-size -64", ["model", "summary", "--image-size", "-64"]),
        ("a MedMNIST file without val_labels", ["data", "summary", "medmnist", f"data.root={tmp / 'mm'}",
                                                "data.name=pneumoniamnist"]),
        ("a MedMNIST file with 28 x 27 images", ["data", "check", "medmnist", f"data.root={tmp / 'mm'}",
                                                 "data.name=organamnist"]),
        ("a MedMNIST size not downloaded", ["data", "summary", "medmnist", f"data.root={tmp / 'mm'}",
                                            "data.name=organamnist", "data.size=224"]),
        ("a MedMNIST name with a typo", ["data", "summary", "medmnist", f"data.root={tmp / 'mm'}",
                                         "data.name=pneumonia"]),
        ("a colorizer for an RGB MedMNIST set", ["run", "recipe", "medmnist-finetune", f"data.root={tmp / 'mm'}",
                                                 "data.name=dermamnist", "model.colorizer=coloru"]),
        ("freeze_epochs outside mode 2", ["run", "recipe", "demo", "train.freeze_epochs=1"]),
        ("lr_mult below 1", ["run", "recipe", "demo-mode2", "train.lr_mult=0.01"]),
        ("a search space with an unknown field", ["tune", "demo-mode2", "--space", str(tmp / "typo-space.yaml"),
                                                  "--trials", "3"]),
        ("a search space with an empty choice", ["tune", "demo-mode2", "--space", str(tmp / "empty-space.yaml"),
                                                 "--trials", "3"]),
        ("a search space value the recipe refuses", ["tune", "demo", "--space", str(tmp / "refused-space.yaml"),
                                                     "--trials", "3"]),
        ("tune with no trials", ["tune", "demo-mode2", "--space", "demo-mode2", "--trials", "0"]),
        ("an unreachable study database", ["tune", "demo-mode2", "--space", "demo-mode2", "--trials", "3",
                                           "--storage", "postgresql://tuner:secret@127.0.0.1:9/medcolor"]),
        ("a k-NN head that would train the body", ["run", "recipe", "medmnistplus-knn", "model.mode=2"]),
        ("padding smaller than the image", ["run", "recipe", "medmnistplus-end-to-end", "data.pad_to=16"]),
        ("an unknown monitor", ["run", "recipe", "demo", "train.monitor=accuracy"]),
        ("one fold", ["run", "recipe", "demo", "--folds", "1"]),
        ("folds without a fold", ["run", "recipe", "demo", "data.folds=5"]),
        ("a fold beyond the folds", ["recipes", "validate", "demo", "data.folds=5", "data.fold=6"]),
        ("more folds than patients", ["run", "recipe", "demo", "data.spec=folder", f"data.root={empty}", "--folds",
                                      "20"]),
        ("class weights for a reconstruction", ["recipes", "validate", "ixi-ae-big-mse", "train.pos_weight=auto"]),
        ("an ensemble of one run", ["ensemble", str(run), "--out", str(tmp / "ens")]),
        ("an ensemble of more seeds than ran", ["ensemble", str(run.parent), "--seeds", "3", "--out", str(tmp / "e3")]),
        ("test-time augmentation in an exported graph", ["predict", str(tmp / "alone.onnx"), str(tmp / "text.png"),
                                                         "--tta", "4"]),
        ("too many test-time passes", ["evaluate", str(run), "--tta", "1000"]),
    ]


def main() -> None:
    rows = ["# What medcolor says to bad input", "",
            "Generated by `docs/make_errors.py` (each case run through the real CLI). Exit code 2: bad input or "
            "usage; 1: a failure while running. Paths are shortened to `<tmp>`.", "",
            "| case | command | exit | message (stderr) |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for what, args in cases(Path(tmp)):
            run = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=tmp, timeout=600)
            err = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
            msg = (err[-1] if err else run.stderr.strip().splitlines()[-1]).replace(tmp, "<tmp>").replace("|", "\\|")
            cmd = "medcolor " + " ".join(a.replace(tmp, "<tmp>") for a in args)
            rows.append(f"| {what} | `{cmd}` | {run.returncode} | {msg} |")
            print(what, run.returncode, flush=True)
    (Path(__file__).parent / "errors.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
