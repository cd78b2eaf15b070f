"""`medcolor data summary`: counts from the label table alone, through the CLI."""
import json
import shutil

from medcolor.cli import main

SAMPLE_TABLE = "Data_Entry_2017.csv"


def test_chestxray14_summary_needs_only_the_label_table(sample_dir, tmp_path, capsys):
    table = tmp_path / SAMPLE_TABLE
    shutil.copy(sample_dir / SAMPLE_TABLE, table)  # no train_val_list.txt / test_list.txt beside it
    assert main(["data", "summary", "chestxray14", "--csv", str(table), "--json"]) == 0
    out = capsys.readouterr()
    s = json.loads(out.out)
    assert s["n_images"] == 1000 and s["split"] == "all" and s["positives"]["Effusion"] == 170
    assert main(["data", "summary", "chestxray14", "--csv", str(table)]) == 0
    assert "whole table" in capsys.readouterr().out


def test_split_counts_are_reported_when_the_split_files_are_there(capsys):
    assert main(["data", "summary", "nih-sample", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["splits"] == {"test": 200, "train": 643, "valid": 157} and s["n_images"] == 643


def test_training_without_split_files_names_the_missing_file(sample_dir, tmp_path, capsys):
    shutil.copy(sample_dir / SAMPLE_TABLE, tmp_path / SAMPLE_TABLE)
    runs = tmp_path / "runs"
    assert main(["run", "recipe", "demo", "data.spec=chestxray14", f"data.root={tmp_path}",
                 "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ChestX-ray14 split file") and "test_list.txt" in err and err.count("\n") == 1
    assert not runs.exists()


def test_a_label_table_that_does_not_exist_is_named(tmp_path, capsys):
    missing = tmp_path / "train.csv"
    for spec in ("chexpert", "chestxray14", "csv"):
        assert main(["data", "summary", spec, "--csv", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: label table {missing} does not exist") and err.count("\n") == 1, err
