import shutil

import pandas as pd
import pytest

from medcolor.data import load_data_config, read_table, summarize
from medcolor.core.errors import UsageError

from fixtures import chexpert, folders, mura, nih


def test_chexpert_paths_resolve_against_the_parent_and_valid_is_official(tmp_path):
    root = chexpert(tmp_path)
    t = read_table(load_data_config("chexpert", root=str(root)))
    assert all(p.startswith(str(tmp_path / "CheXpert-v1.0-small" / "train")) for p in t.split("train")["path"])
    assert len(t.split("valid")) == 8 and len(t.split("train")) == 24
    assert t.labels == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def test_chestxray14_labels_and_any_finding(tmp_path):
    root = nih(tmp_path)
    t = read_table(load_data_config("chestxray14", ["any_finding=true"], root=str(root)))
    df = pd.read_csv(root / "Data_Entry_2017.csv").set_index("Image Index")
    for _, row in t.df.iterrows():
        findings = df.loc[row["path"].rsplit("/", 1)[1], "Finding Labels"].split("|")
        assert row["Effusion"] == ("Effusion" in findings)
        assert row["Any finding"] == (findings != ["No Finding"])
    assert len(read_table(load_data_config("chestxray14", ["labels=all14"], root=str(root))).labels) == 14


def test_chestxray14_validation_shares_no_patient_with_training(sample_dir):
    t = read_table(load_data_config("nih-sample"))
    train, valid = set(t.split("train")["group"]), set(t.split("valid")["group"])
    assert train and valid and not train & valid
    assert len(t.split("test")) == 200 and len(t.split("train")) + len(t.split("valid")) == 800


def test_mura_labels_from_study_folders_and_body_part(tmp_path):
    root = mura(tmp_path)
    t = read_table(load_data_config("mura", root=str(root)))
    train = t.split("train")
    assert set(train["path"].str.split("/").str[-4]) == {"XR_SHOULDER"} and len(train) == 18
    assert (train["Abnormal"] == train["group"].str.endswith("_positive")).all()
    assert len(read_table(load_data_config("mura", ["body_part=all"], root=str(root))).split("train")) == 24


@pytest.mark.parametrize("split_layout", [True, False])
def test_folder_classes_become_one_hot_labels(tmp_path, split_layout):
    t = read_table(load_data_config("folder", root=str(folders(tmp_path, split_layout))))
    assert t.labels == ["normal", "pneumonia"] and t.single_label
    assert (t.df[t.labels].sum(axis=1) == 1).all()
    assert len(t.split("valid")) == (6 if split_layout else 2)  # 20 % of 12 images


def test_csv_spec_with_split_column(tmp_path):
    from fixtures import write_image
    for i in range(6):
        write_image(tmp_path / "imgs" / f"{i}.png", seed=i)
    pd.DataFrame({"file": [f"imgs/{i}.png" for i in range(6)], "Edema": [1, 0, -1, "", 1, 0],
                  "fold": ["train"] * 4 + ["val"] * 2}).to_csv(tmp_path / "labels.csv", index=False)
    cfg = load_data_config("csv", ["path_col=file", "split_col=fold", "labels=[Edema]"], root=str(tmp_path))
    t = read_table(cfg)
    assert list(t.df["split"]) == ["train"] * 4 + ["valid"] * 2 and t.df["Edema"].tolist() == [1, 0, 0, 0, 1, 0]


def test_paths_escaping_the_dataset_are_rejected(tmp_path):
    pd.DataFrame({"path": ["../../etc/passwd", "/etc/hostname"], "Edema": [1, 0]}).to_csv(tmp_path / "labels.csv",
                                                                                          index=False)
    with pytest.raises(UsageError, match="2 image paths point outside"):
        read_table(load_data_config("csv", root=str(tmp_path)))


@pytest.mark.parametrize("overrides,match", [
    (["labels=[Edema, Pneumothorax, Fracturee]"], r"unknown labels \['Fracturee'\]"),
    (["csv=missing.csv"], "missing.csv does not exist"),
    (["valid_pct=0"], "valid split of data spec 'chestxray14' is empty"),
])
def test_bad_nih_inputs(tmp_path, overrides, match):
    root = nih(tmp_path)
    with pytest.raises(UsageError, match=match):
        read_table(load_data_config("chestxray14", overrides, root=str(root)))


def test_missing_columns_are_named(tmp_path):
    root = chexpert(tmp_path, n_train=4)
    pd.read_csv(root / "train.csv").drop(columns=["Edema", "Path"]).to_csv(root / "train.csv", index=False)
    with pytest.raises(UsageError, match=r"missing columns \['Path', 'Edema'\]"):
        summarize(load_data_config("chexpert", root=str(root)))


def test_unknown_spec_lists_known_ones():
    with pytest.raises(UsageError, match="unknown data spec 'chexpret' \\(did you mean chexpert\\?\\); known specs: "
                                         "chestxray14, chexpert"):
        load_data_config("chexpret")


def test_ixi_duplicated_subject_ids_keep_the_first_row_and_unlisted_subjects_train(tmp_path, capsys):
    """The real IXI.xls lists some subjects twice (512, 513, 523); subjects it does not list go to training."""
    import pandas as pd
    from medcolor.cli import main
    from fixtures import ixi

    root = ixi(tmp_path, n_subjects=10)
    demo = pd.read_csv(root / "IXI.csv")
    demo = pd.concat([demo.iloc[:8], demo.iloc[[2, 3]].assign(ETHNIC_ID=9)], ignore_index=True)  # 2 repeated, 2 unlisted
    demo.to_csv(root / "IXI.csv", index=False)
    args = ["data", "summary", "ixi", "--root", str(root), "slices=5:7", "valid_pct=0.25", "test_pct=0.25"]
    assert main(args + ["--json"]) == 0
    out = capsys.readouterr()
    assert out.err == "warning: IXI.csv lists 2 subject IDs more than once (IXI014, IXI015); keeping the first row of each\n"
    t = read_table(load_data_config("ixi", args[5:], root=str(root)))
    split = t.df.drop_duplicates("group").set_index("group")["split"]
    assert split["IXI020"] == split["IXI021"] == "train"  # not in the demographics table
    assert (split.drop(["IXI020", "IXI021"]) != "train").sum() == 4  # 8 listed subjects: 2 valid, 2 test


def test_csv_rows_without_a_path_are_named(tmp_path):
    from fixtures import csv_table

    root = csv_table(tmp_path)
    table = pd.read_csv(root / "labels.csv")
    table.loc[[2, 5], "path"] = ""
    table.to_csv(root / "labels.csv", index=False)
    with pytest.raises(UsageError, match=r"labels.csv: 2 rows have no image path \(lines 4, 7\)"):
        read_table(load_data_config("csv", root=str(root)))
    from medcolor.cli import main
    assert main(["data", "summary", "csv", "--root", str(root)]) == 2


def test_a_label_set_name_from_another_spec_is_explained(tmp_path):
    from fixtures import csv_table

    root = csv_table(tmp_path)
    with pytest.raises(UsageError, match=r"data.labels is 'thesis5' \(a recipe's label-set name\?\), not a column"):
        read_table(load_data_config("csv", ["labels=thesis5"], root=str(root)))


def test_a_csv_run_from_the_demo_recipe_says_where_thesis5_comes_from(tmp_path, capsys):
    from fixtures import csv_table
    from medcolor.cli import main

    root = csv_table(tmp_path / "data")
    assert main(["run", "recipe", "demo", "data.spec=csv", f"data.root={root}", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.labels is 'thesis5'") and "data.labels=[...]" in err and "\n" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("recipe.yaml"))


def _never_opened(monkeypatch, outside):
    """PIL and open() fail for anything under `outside`: proves a refusal came before any read there."""
    import builtins

    import PIL.Image

    def guard(opener):
        def opened(path, *args, **kwargs):
            assert not str(path).startswith(str(outside)), f"read {path} outside the dataset"
            return opener(path, *args, **kwargs)
        return opened
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(PIL.Image, "open", guard(PIL.Image.open))


@pytest.mark.parametrize("layout", ["csv image", "folder class", "chexpert patient"])
def test_symlinks_out_of_the_dataset_are_refused_before_anything_is_read(tmp_path, monkeypatch, capsys, layout):
    from medcolor.cli import main
    from fixtures import chexpert, csv_table, folders, write_image

    secret = tmp_path / "secret"
    write_image(secret / "x.png")
    write_image(secret / "cls" / "y.png")
    if layout == "csv image":
        root = csv_table(tmp_path / "c")
        (root / "scans" / "0.png").unlink()
        (root / "scans" / "0.png").symlink_to(secret / "x.png")
        args = ["csv", "--root", str(root)]
    elif layout == "folder class":
        root = folders(tmp_path / "f")
        (root / "train" / "stolen").symlink_to(secret / "cls")
        args = ["folder", "--root", str(root)]
    else:
        root = chexpert(tmp_path / "x")
        patient = root / "train" / "patient00000"
        shutil.rmtree(patient)
        shutil.copytree(root / "train" / "patient00001", secret / "patient00000")
        patient.symlink_to(secret / "patient00000")
        args = ["chexpert", "--root", str(root)]
    _never_opened(monkeypatch, secret)
    listed = layout == "folder class"  # a folder listing reads the linked folder; a table lists paths only
    for command in (["data", "check"], ["data", "cache"]) + ((["data", "summary"],) if listed else ()):
        assert main([*command, *args]) == 2
        err = capsys.readouterr().err
        assert "outside" in err and "through symbolic links" in err and err.count("\n") == 1


def test_symlinks_inside_the_dataset_stay_fine(tmp_path, capsys):
    from medcolor.cli import main
    from fixtures import csv_table

    root = csv_table(tmp_path)
    (root / "scans" / "0.png").unlink()
    (root / "scans" / "0.png").symlink_to(root / "scans" / "1.png")
    assert main(["data", "check", "csv", "--root", str(root)]) == 0


@pytest.mark.parametrize("spec,make", [("folder", folders), ("chestxray14", nih), ("mura", mura), ("csv", None),
                                       ("nih-sample", None)])
def test_subset_samples_the_training_split_of_every_layout(tmp_path, spec, make):
    from fixtures import csv_table

    root = None if spec == "nih-sample" else str((make or csv_table)(tmp_path))
    full = read_table(load_data_config(spec, root=root))
    part = read_table(load_data_config(spec, ["subset.fraction=0.5", "subset.seed=8"], root=root))
    train = full.split("train")
    expected = train.sample(frac=0.5, random_state=8)["path"]  # CheXpert's own rule: pandas' seeded sample
    assert sorted(part.split("train")["path"]) == sorted(expected)
    assert part.split("valid")["path"].tolist() == full.split("valid")["path"].tolist()  # only training is sampled
    s = summarize(load_data_config(spec, ["subset.fraction=0.5", "subset.seed=8"], root=root))
    assert s["n_images"] == len(expected)
