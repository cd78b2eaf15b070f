"""MedMNIST npz files (data/medmnist.py and its reader), through the command line as a user meets them."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fixtures import MEDMNIST_COUNTS, write_npz
from medcolor.cli import main
from medcolor.core.config import DataConfig
from medcolor.data import medmnist
from medcolor.data.readers import read_table

N = {"train": MEDMNIST_COUNTS["train"], "valid": MEDMNIST_COUNTS["val"], "test": MEDMNIST_COUNTS["test"]}
TASKS = {"pneumoniamnist": {"n_classes": 2}, "organamnist": {"n_classes": 11}, "chestmnist": {"multi_label": 14}}


@pytest.fixture(scope="module")
def mm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("medmnist")
    for name, shape in TASKS.items():
        write_npz(root, name, **shape)
    write_npz(root, "breastmnist", size=64, compressed=False)  # np.savez: memory-mapped, not read whole
    return root


def config(root, name, size=28) -> DataConfig:
    return DataConfig(spec="medmnist", reader="medmnist", root=str(root), name=name, size=size)


@pytest.mark.parametrize("name,single,n_labels", [("pneumoniamnist", True, 2), ("organamnist", True, 11),
                                                  ("chestmnist", False, 14)])
def test_the_official_splits_and_the_task_as_the_dataset_defines_it(mm_root, name, single, n_labels):
    table = read_table(config(mm_root, name))
    assert table.single_label == single and table.labels == medmnist.DATASETS[name][2] and len(table.labels) == n_labels
    assert {k: int(v) for k, v in table.df["split"].value_counts().items()} == N
    raw = np.load(mm_root / f"{name}.npz")["test_labels"]
    test = table.split("test")[table.labels].to_numpy()
    expected = raw if not single else np.eye(n_labels)[raw[:, 0]]
    assert np.array_equal(test, expected)


def test_images_are_read_from_the_file_at_their_index_compressed_or_stored(mm_root):
    from medcolor.data.images import open_gray

    for name, size in (("pneumoniamnist", 28), ("breastmnist", 64)):
        table = read_table(config(mm_root, name, size))
        path = table.split("valid")["path"].iloc[5]
        assert path.endswith(f"{name}{'' if size == 28 else f'_{size}'}.npz/valid/5")
        expected = np.load(mm_root / f"{path.split('.npz')[0].rsplit('/', 1)[1]}.npz")["val_images"][5]
        assert np.array_equal(np.asarray(open_gray(path)), expected)
    assert isinstance(medmnist.split_array(str(mm_root / "breastmnist_64.npz"), "train_images"), np.memmap)


def test_summary_check_and_a_run_for_binary_multi_class_and_multi_label(mm_root, tmp_path, capsys):
    for name in TASKS:
        assert main(["data", "summary", "medmnist", f"data.root={mm_root}", f"data.name={name}", "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["n_images"] == N["train"] and s["dataset"].startswith(f"{name} at 28 px")
        assert main(["run", "recipe", "medmnist-finetune", f"data.root={mm_root}", f"data.name={name}",
                     "train.epochs=1", "--runs-dir", str(tmp_path), "--quiet", "--json"]) == 0
        r = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert f"medmnist-finetune@{name}-28" in r["run_dir"] and 0 <= r["acc"] <= 1 and r["n_images"] == N["test"]
    assert main(["data", "check", "medmnist", f"data.root={mm_root}", "data.name=breastmnist", "data.size=64"]) == 0
    assert "80 images: all present and decodable" in capsys.readouterr().out


def test_every_result_command_works_on_a_medmnist_run(mm_root, tmp_path, capsys):
    assert main(["run", "recipe", "medmnist-linear-probe", f"data.root={mm_root}", "data.name=organamnist",
                 "train.epochs=1", "--runs-dir", str(tmp_path), "--quiet", "--json"]) == 0
    run = json.loads(capsys.readouterr().out.splitlines()[-1])["run_dir"]
    image = f"{mm_root}/organamnist.npz/test/3"
    for command in (["evaluate", run], ["interpret", run], ["export", run], ["predict", run, image],
                    ["predict", f"{run}/model.onnx", image]):
        assert main(command) == 0, command
        capsys.readouterr()
    evaluated = json.loads((tmp_path / run / "eval-test" / "metrics.json").read_text())
    assert evaluated["acc"] == pytest.approx(json.loads((tmp_path / run / "metrics.json").read_text())["acc"])


@pytest.mark.parametrize("arrays,message", [
    ({"drop": "val_labels"}, "has no 'val_labels' array"),
    ({"train_images": np.zeros((48, 28, 27), np.uint8)}, "train_images is uint8 (48, 28, 27); pneumoniamnist at 28 px "
                                                         "is uint8 (N, 28, 28)"),
    ({"test_images": np.zeros((16, 28, 28), np.float32)}, "test_images is float32"),
    ({"val_labels": np.zeros((15, 1), np.uint8)}, "val_labels has shape (15, 1)"),
    ({"train_labels": np.full((48, 1), 7, np.uint8)}, "classes outside 0-1"),
])
def test_a_wrong_file_is_one_error_line(tmp_path, capsys, arrays, message):
    write_npz(tmp_path, "pneumoniamnist", **arrays)
    assert main(["data", "summary", "medmnist", f"data.root={tmp_path}", "data.name=pneumoniamnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_missing_files_unknown_names_and_sizes_say_what_to_do(tmp_path, capsys):
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"not a zip")
    for words, message in (
            (["data.name=pneumoniamnist"], "is not a readable .npz file"),
            (["data.name=pneumoniamnist", "data.size=64"], "does not download them - the medmnist package does"),
            (["data.name=organmnist"], "did you mean"),
            (["data.name=pneumoniamnist", "data.size=32"], "data.size must be one of 28, 64, 128, 224"),
            (["data.name=pneumoniamnist", "data.labels=[a]"], "data.labels is not used by data spec 'medmnist'")):
        assert main(["data", "summary", "medmnist", f"data.root={tmp_path}", *words]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not zipfile.is_zipfile(tmp_path / "pneumoniamnist.npz")


def test_rgb_datasets_go_straight_to_the_backbone_and_say_so(tmp_path, capsys):
    root = tmp_path / "mm"
    write_npz(root, "dermamnist", n_classes=7, rgb=True)
    data = [f"data.root={root}", "data.name=dermamnist"]
    assert main(["run", "recipe", "medmnist-finetune", *data, "model.colorizer=coloru", "--runs-dir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: dermamnist is RGB: its images go straight to the backbone, so model.colorizer must be none "
                   "(got coloru); colorizers are for gray images")
    assert main(["run", "recipe", "medmnist-finetune", *data, "train.epochs=1", "--runs-dir", str(tmp_path),
                 "--json"]) == 0
    out, err = capsys.readouterr()
    assert "dermamnist at 28 px, multi-class, RGB: its images go straight to the backbone in color" in err
    run = json.loads(out.splitlines()[-1])["run_dir"]
    spec = json.loads((tmp_path / run / "model.json").read_text())
    assert spec["input"]["channels"] == 3 and len(spec["input"]["mean"]) == 3
    assert main(["export", run]) == 0
    assert json.loads((tmp_path / run / "model.onnx.json").read_text())["preprocessing"]["input_shape"][1] == 3
    image = f"{root}/dermamnist.npz/test/4"
    capsys.readouterr()
    assert main(["predict", run, image]) == 0 and main(["predict", f"{run}/model.onnx", image]) == 0
    from_run, from_onnx = (line.split(",")[1] for line in capsys.readouterr().out.splitlines() if line.startswith(image))
    assert float(from_run) == pytest.approx(float(from_onnx), abs=1e-5)


def test_an_input_smaller_than_the_files_images_is_refused():
    from medcolor.core.errors import UsageError
    from medcolor.training.recipes import load_recipe

    with pytest.raises(UsageError, match="train.image_size=32 would shrink the 64 px images of data.size=64; set "
                                         "train.image_size=64"):
        load_recipe("medmnist-finetune", ["data.size=64"])
    assert load_recipe("medmnist-finetune", ["data.size=64", "train.image_size=64"]).name == \
        "medmnist-finetune@pneumoniamnist-64"


@pytest.mark.parametrize("compressed", [True, False])
def test_a_damaged_array_is_found_by_data_check_without_holding_it(tmp_path, capsys, compressed):
    path = write_npz(tmp_path, "pneumoniamnist", compressed=compressed)
    data = bytearray(path.read_bytes())
    at = data.find(b"train_images.npy") + 900
    data[at] ^= 0xFF
    data[at + 300] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["data", "check", "medmnist", f"data.root={tmp_path}", "data.name=pneumoniamnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: 80 images checked: {N['train']} undecodable ({path}/train/0,")


def test_no_medmnist_folder_says_where_the_files_come_from(tmp_path, capsys):
    assert main(["data", "summary", "medmnist", f"data.root={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a folder; MedMNIST files are read where the medmnist package downloaded them "
                        "(~/.medmnist) or from data.root=DIR - medcolor does not download them")


@pytest.mark.parametrize("name", ["breastmnist", "organamnist"])
def test_a_knn_run_votes_as_scikit_learns_kneighbors_classifier(mm_root, tmp_path, capsys, name):
    """medmnistplus-knn: its test ACC and vote shares equal KNeighborsClassifier(n_neighbors=11) fitted on the same
    frozen features of the training split; the run folder alone is the model (predict needs no training data)."""
    import pandas as pd
    from sklearn.neighbors import KNeighborsClassifier

    from medcolor.nets.models import knn_head
    from medcolor.tasks.classification import frozen_features
    from medcolor.training.runs import load_model

    if name == "breastmnist":
        write_npz(mm_root, "breastmnist")
    assert main(["run", "recipe", "medmnistplus-knn", f"data.root={mm_root}", f"data.name={name}", "data.pad_to=64",
                 "--runs-dir", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    run = json.loads(out.strip().splitlines()[-1])
    table = read_table(config(mm_root, name))
    spec, learn = load_model(run["run_dir"])
    train, test = table.split("train").reset_index(drop=True), table.split("test").reset_index(drop=True)
    support = knn_head(learn.model).support.numpy()  # what the run votes on, as saved in best.pth
    assert len(support) == len(train), f"the run voted with {len(support)} of {len(train)} training images: {err}"
    recomputed = frozen_features(learn, train)
    # two computations of the same features agree to float32 rounding, which may depend on the CPU's kernels
    drift = float(np.abs(support - recomputed).max())
    assert drift <= 1e-3 * np.abs(support).max(), \
        f"the saved support set is not the training split's features ({drift})"
    knn = KNeighborsClassifier(n_neighbors=11).fit(support, train[table.labels].to_numpy().argmax(1))
    features = frozen_features(learn, test)
    expected = knn.predict(features)
    assert run["acc"] == pytest.approx(float(np.mean(expected == test[table.labels].to_numpy().argmax(1))), abs=1e-12)
    preds = pd.read_csv(Path(run["run_dir"]) / "predictions.csv")
    shares = knn.predict_proba(features)
    # where the 11th and 12th nearest training images are (all but) equally far, either may vote: the shares are
    # compared where the eleven nearest stay the eleven nearest when every feature is off by up to that drift
    distances = knn.kneighbors(features, n_neighbors=12)[0]
    margin = 1e-4 * np.maximum(1.0, distances[:, 10]) + 2 * np.sqrt(support.shape[1]) * drift
    clear = distances[:, 11] - distances[:, 10] > margin
    assert clear.mean() >= 0.5, f"{clear.sum()} of {len(clear)} test images have clear neighbours (drift {drift:.2g})"
    for j, label in enumerate(knn.classes_):
        assert np.allclose(preds[f"p_{table.labels[label]}"][clear], shares[clear, j], atol=1e-5), f"drift {drift:.2g}"
    if name == "breastmnist":  # the vote is in the exported graph too
        assert main(["export", run["run_dir"], "--format", "onnx", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["parity_max_abs_diff"] < 1e-5
