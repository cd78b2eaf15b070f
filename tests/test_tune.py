"""`medcolor tune` end to end: a study on the bundled sample, stopped and continued, shared by two processes, never
opening a test image, and refusing bad input before it makes a study folder."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from fixtures import chexpert, folders
from medcolor.cli import main

TINY = ["train.image_size=32", "train.bs=64", "train.lr_find=false", "data.subset.fraction=0.25"]
SMALL_SPACE = "description: a small demo space\ntrain.max_lr: {log: [1.0e-3, 5.0e-2]}\ntrain.epochs: {int: [1, 2]}\n"


def write_space(tmp_path: Path, text: str = SMALL_SPACE) -> str:
    path = tmp_path / "small.yaml"
    path.write_text(text)
    return str(path)


def trials_of(study: Path) -> list:
    return optuna.load_study(study_name=study.name, storage=f"sqlite:///{study / 'study.db'}").trials


def test_a_study_writes_its_database_trials_best_recipe_and_plots_and_best_yaml_trains(tmp_path, capsys):
    study = tmp_path / "S"
    space = write_space(tmp_path, SMALL_SPACE + "model.freeze_bn_stats: {choice: [true, false]}\n")
    assert main(["tune", "demo-mode2", *TINY, "--space", space, "--trials", "3", "--study", str(study)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:3]] == ["trial 0", "trial 1", "trial 2"]
    assert "best so far" in out[2] and out[-1].startswith(f"next: medcolor run recipe {study / 'best.yaml'} ")
    assert out[-1].endswith("--seeds 3, then evaluate those runs on the test split once (medcolor report / evaluate)")
    assert all((study / f).is_file() for f in ("study.db", "trials.csv", "best.yaml", "history.png", "importance.png"))
    table = pd.read_csv(study / "trials.csv")
    assert list(table["number"]) == [0, 1, 2] and set(table["state"]) <= {"complete", "pruned"}
    assert {"train.max_lr", "train.epochs", "model.freeze_bn_stats", "valid_mean_auc", "run_dir"} <= set(table.columns)
    for run in map(Path, table["run_dir"]):  # ordinary run folders, scored on valid: the test split never read
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["split"] == "valid" and metrics["finished"]
    assert main(["report", str(study / "runs"), "--no-per-label"]) == 0  # trials are ordinary run folders
    assert capsys.readouterr().out.strip().endswith("Every row is scored on the valid split: its runs never read a "
                                                    "test split (tuning trials), or their data has none.")
    assert main(["evaluate", table["run_dir"][0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "valid"
    parent = next((study / "runs" / "demo").iterdir())  # the mode-1 run the chain starts from, trained once
    assert json.loads((parent / "metrics.json").read_text())["split"] == "valid"
    trials = trials_of(study)
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert table.loc[best.number, "valid_mean_auc"] == pytest.approx(best.value)
    assert best.value == pytest.approx(json.loads((Path(table.loc[best.number, "run_dir"]) / "metrics.json")
                                                  .read_text())["best_valid_mean_auc"])
    text = (study / "best.yaml").read_text()
    assert f"best trial {best.number}: valid mean_auc {best.value:.4f}" in text and "name: demo-mode2-tuned" in text
    assert main(["recipes", "show", str(study / "best.yaml")]) == 0
    shown = capsys.readouterr().out
    assert f"max_lr: {best.params['train.max_lr']}" in shown and f"epochs: {best.params['train.epochs']}" in shown
    runs = study / "runs"  # where the mode-1 run it starts from is (the same network, seed and data: reused)
    assert main(["run", "recipe", str(study / "best.yaml"), *TINY, "--runs-dir", str(runs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(result["run_dir"]).parent == runs / "demo-mode2-tuned" and result["split"] == "test"
    assert len(list((runs / "demo").iterdir())) == 1


def test_a_study_killed_mid_trial_continues_without_repeating_or_counting_it(tmp_path, capsys):
    study, space = tmp_path / "S", write_space(tmp_path, SMALL_SPACE.replace("{int: [1, 2]}", "{choice: [3]}"))
    cmd = [sys.executable, "-m", "medcolor", "tune", "demo", *TINY, "--space", space, "--trials", "2", "--study",
           str(study), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = time.time()
    while not list((study / "runs").glob("demo-t0/*/history.csv")):  # trial 0 has finished an epoch
        assert proc.poll() is None and time.time() - start < 300, proc.stderr.read().decode()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no handler runs
    proc.wait()
    killed = next((study / "runs" / "demo-t0").iterdir())
    assert [t.state.name for t in trials_of(study)] == ["RUNNING"]
    assert main(["tune", "demo", *TINY, "--space", space, "--trials", "1", "--study", str(study), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"note: trial 0 was stopped (its process {proc.pid} is gone): marked failed; its run folder {killed} was " \
           f"stopped before it finished" in err
    trials = trials_of(study)
    assert [(t.number, t.state.name) for t in trials] == [(0, "FAIL"), (1, "COMPLETE")]
    table = pd.read_csv(study / "trials.csv", keep_default_na=False)
    assert list(table["number"]) == [0, 1] and list(table["state"]) == ["fail", "complete"]
    assert "was killed" in table.loc[0, "stopped"] and table.loc[1, "run_dir"]
    other = write_space(tmp_path, "train.max_lr: {log: [1.0e-3, 5.0e-2]}\n")
    assert main(["tune", "demo", *TINY, "--space", other, "--trials", "1", "--study", str(study)]) == 2
    assert "holds another study (recipe demo train.image_size=32" in capsys.readouterr().err


def test_two_processes_share_one_sqlite_study(tmp_path):
    study, space = tmp_path / "S", write_space(tmp_path, SMALL_SPACE.replace("{int: [1, 2]}", "{choice: [1]}"))
    procs = [subprocess.Popen([sys.executable, "-m", "medcolor", "tune", "demo", *TINY, "--space", space, "--trials",
                               "1", "--study", str(study), "--seed", str(seed), "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for seed in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
    trials = trials_of(study)
    assert sorted(t.number for t in trials) == [0, 1] and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # one trial each, numbered by the shared database
    assert list(pd.read_csv(study / "trials.csv")["number"]) == [0, 1]


def test_tuning_never_opens_a_test_image_nor_needs_test_labels(tmp_path, capsys, monkeypatch):
    import medcolor.data.images as images

    root = folders(tmp_path)
    for cls in ("normal", "pneumonia"):
        for i in range(3):
            (root / "test" / cls).mkdir(parents=True, exist_ok=True)
            (root / "test" / cls / f"img{i}.png").write_bytes(b"not an image at all")
    opened = []
    for name in ("open_gray", "open_rgb", "image_exists"):
        real = getattr(images, name)

        def spy(path, *args, real=real):
            opened.append(str(path))
            assert "/test/" not in str(path), f"{path} of the test split was opened"
            return real(path, *args)
        monkeypatch.setattr(images, name, spy)
    space, errors = write_space(tmp_path, SMALL_SPACE.replace("{int: [1, 2]}", "{choice: [1]}")), ""
    for data in (["data.spec=folder", f"data.root={root}"],
                 ["data.spec=chexpert", f"data.root={chexpert(tmp_path / 'cx', n_train=24, n_valid=12)}",
                  "data.labels=[Cardiomegaly,Edema,Pleural Effusion]"]):
        study = tmp_path / f"S-{data[0]}"
        assert main(["tune", "demo", *TINY, *data, "--space", space, "--trials", "1", "--study", str(study),
                     "--json"]) == 0
        captured = capsys.readouterr()
        errors += captured.err
        first, last = (json.loads(line) for line in captured.out.strip().splitlines())
        assert first["number"] == 0 and first["state"] == "complete" and first["best_trial"] == 0
        assert last["best_trial"] == 0 and last["files"][-1] == "best.yaml" and last["next"].startswith("next: ")
        run = Path(pd.read_csv(study / "trials.csv")["run_dir"][0])
        assert json.loads((run / "metrics.json").read_text())["split"] == "valid"
    assert "skipping" not in errors and any("/valid/" in p for p in opened)


@pytest.mark.parametrize("words,expected", [
    (["--space", "SPACE_BAD_FIELD", "--trials", "1"], "unknown key 'train.max_lrr'"),
    (["--space", "SPACE_EMPTY", "--trials", "1"], "model.colorizer: choice needs a non-empty list"),
    (["--space", "demo-mode2", "--trials", "0"], "--trials must be at least 1, got 0"),
    (["--space", "demo-mode2", "--trials", "1", "--storage", "sqlite:////nonexistent/folder/study.db"],
     "cannot open the study database sqlite:////nonexistent/folder/study.db"),
    (["--space", "demo-mode2", "--trials", "1", "--storage", "postgresql://nobody:secret@127.0.0.1:9/none"],
     "postgresql://nobody:***@127.0.0.1:9/none"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_no_study_folder(tmp_path, capsys, words, expected):
    spaces = {"SPACE_BAD_FIELD": "train.max_lrr: {log: [1.0e-4, 1.0e-1]}\n",
              "SPACE_EMPTY": "model.colorizer: {choice: []}\n"}
    words = [write_space(tmp_path, spaces[w]) if w in spaces else w for w in words]
    study = tmp_path / "S"
    assert main(["tune", "demo-mode2", *words, "--study", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert "secret" not in err[0] and not study.exists()


def test_a_pruned_trial_stops_after_the_epoch_its_pruner_names_and_still_finishes_its_run(tmp_path):
    """PruneTrial reports each epoch's best validation value to the Optuna trial and stops the run when the
    pruner says so; the run folder is an ordinary finished one that says why it stopped."""
    from medcolor.training.callbacks import PruneTrial
    from medcolor.training.train import run_recipe

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # always
    trial = study.ask()
    result = run_recipe("demo", [*TINY, "train.epochs=3", "data.use_test=false"], runs_dir=tmp_path, quiet=True,
                        callbacks=[PruneTrial(trial)])[0]
    assert result["stopped_early"] == {"epoch": 0, "why": "pruned by the tuning study: worse than its earlier trials "
                                                          "at this epoch"}
    assert result["split"] == "valid" and result["epochs_trained"] == 1
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {0: result["best_valid_mean_auc"]}
