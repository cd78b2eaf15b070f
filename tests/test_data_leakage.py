import pandas as pd

from medcolor.cli import main

from fixtures import nih, write_image


def _csv_with_split(tmp_path, rows):
    for path, _ in rows:
        write_image(tmp_path / path, size=(32, 32), seed=hash(path) % 1000)
    pd.DataFrame({"path": [p for p, _ in rows], "split": [s for _, s in rows],
                  "Edema": [i % 2 for i in range(len(rows))]}).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def test_an_image_in_train_and_test_is_refused_by_run_and_reported_by_data_check(tmp_path, capsys):
    rows = [(f"img/{i}.png", "train") for i in range(8)] + [(f"img/{i}.png", "valid") for i in range(8, 12)]
    root = _csv_with_split(tmp_path / "d", rows + [("img/3.png", "test"), ("img/9.png", "test")])
    assert main(["data", "check", "csv", "--root", str(root), "split_col=split"]) == 2
    err = capsys.readouterr().err
    assert "2 images are listed in two splits (test and train; test and valid)" in err and err.count("\n") == 1
    runs = tmp_path / "runs"
    assert main(["run", "recipe", "demo", "data.spec=csv", f"data.root={root}", "data.split_col=split",
                 "data.labels=[Edema]", "train.image_size=32", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 images are listed in two splits") and "Traceback" not in err
    assert not runs.exists()


def test_an_image_on_both_chestxray14_lists_is_leakage_and_shared_patients_are_named(tmp_path, capsys):
    root = nih(tmp_path, n=40)
    names = (root / "train_val_list.txt").read_text().split()
    (root / "test_list.txt").write_text((root / "test_list.txt").read_text() + names[0] + "\n")
    assert main(["data", "check", "chestxray14", "--root", str(root)]) == 2
    assert "1 image is listed in two splits (test and train)" in capsys.readouterr().err
    (root / "test_list.txt").write_text(names[-1] + "\n")  # the test image's patient has a training image
    (root / "train_val_list.txt").write_text("\n".join(names[:-1]) + "\n")
    assert main(["data", "check", "chestxray14", "--root", str(root), "--json"]) == 0
    captured = capsys.readouterr()
    assert "1 patient (group) has images in two splits (test and train) (10)" in captured.err
