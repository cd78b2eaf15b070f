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


def _peak_rss_of_data_check(root) -> float:
    """MiB: the largest resident set of a fresh process that runs `medcolor data check folder --root ROOT`."""
    import subprocess
    import sys

    code = ("import resource, sys; from medcolor.cli import main; code = main(['data', 'check', 'folder', "
            f"'--root', {str(root)!r}]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); "
            "sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(run.stdout.strip().splitlines()[-1])


def test_data_check_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """1,000 and 4,000 images of 256 x 256 (64 KiB each decoded: 190 MiB more if kept) peak within a few MiB."""
    import numpy as np
    from PIL import Image

    gradient = np.add.outer(np.arange(256), np.arange(256)).astype(np.uint8)  # decodes to 64 KiB, tiny as PNG
    first = tmp_path / "seed.png"
    Image.fromarray(gradient).save(first)
    peaks = {}
    for n in (1000, 4000):
        for i in range(n):
            folder = tmp_path / str(n) / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(first, folder / f"{i}.png")
        peaks[n] = _peak_rss_of_data_check(tmp_path / str(n))
    assert peaks[4000] - peaks[1000] < 8, peaks
