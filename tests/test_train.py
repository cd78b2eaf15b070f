"""End-to-end runs through the CLI on the bundled real sample and small fixtures."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medcolor.cli import main

TINY = ["train.image_size=32", "train.bs=64", "train.lr_find=false"]
RUN_FILES = ["recipe.yaml", "env.json", "history.csv", "metrics.json", "best.pth", "last.pth", "predictions.csv",
             "plots/roc.png", "plots/colorizer.png", "plots/loss.png", "plots/lr_find.png", "lr_find.json"]


def run_json(capsys, *args) -> dict:
    assert main(["run", "recipe", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_demo_end_to_end_writes_every_run_file(tmp_path, capsys):
    result = run_json(capsys, "demo", "train.epochs=2", *TINY, "train.lr_find=true", "--runs-dir", str(tmp_path))
    run = Path(result["run_dir"])
    assert run.parent == tmp_path / "demo" and run.name.endswith("-efficientnet_lite0-s0")
    assert all((run / f).is_file() for f in RUN_FILES)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["split"] == "test" and metrics["n_images"] == 200
    assert set(metrics["auc"]) == {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Any finding"}
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and {"train_loss", "valid_loss", "mean_auc"} <= set(history.columns)
    assert metrics["best_epoch"] == int(history["mean_auc"].idxmax())
    best = torch.load(run / "best.pth", weights_only=True)
    last = torch.load(run / "last.pth", weights_only=True)
    assert "colorizer.dw1.0.weight" in best and last["epoch"] == 1 and len(last["rows"]) == 2
    preds = pd.read_csv(run / "predictions.csv")
    auc = roc_auc_score(preds["Any finding"], preds["p_Any finding"])
    assert auc == pytest.approx(metrics["auc"]["Any finding"]) and result["mean_auc"] == metrics["mean_auc"]


def _wait_for_history(parent: Path, rows: int, proc, timeout=180) -> Path:
    start = time.time()
    while time.time() - start < timeout:
        for h in parent.glob("*/history.csv"):
            if len(h.read_text().strip().splitlines()) > rows:
                return h.parent
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("no epoch finished in time")


def test_sigterm_then_sigkill_then_resume_continue_the_same_run(tmp_path, capsys):
    """SIGTERM (kill, timeout, schedulers) keeps a resumable folder and says so; a resumed run killed with SIGKILL
    mid-epoch loses at most that epoch; a last --resume finishes the schedule with one history."""
    cmd = [sys.executable, "-m", "medcolor", "run", "recipe", "demo", "train.epochs=4", *TINY,
           "--runs-dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = _wait_for_history(tmp_path / "demo", 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    errors = [ln for ln in err.decode().splitlines() if ln.startswith("error:")]
    assert proc.returncode == 143 and len(errors) == 1 and "Traceback" not in err.decode()
    assert errors[0].startswith("error: SIGTERM: stopped after epoch") and f"--resume {run}" in errors[0]
    rows = len(pd.read_csv(run / "history.csv"))
    proc = subprocess.Popen([sys.executable, "-m", "medcolor", "run", "recipe", "demo", "--resume", str(run),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_history(tmp_path / "demo", rows + 1, proc)  # (header + rows lines): one more epoch done
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_csv(run / "history.csv")
    done = torch.load(run / "last.pth", weights_only=True)["epoch"] + 1
    assert 2 <= done < 4 and not (run / "metrics.json").exists()
    assert main(["run", "recipe", "demo", "--resume", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {run} at epoch {done} of 4" in captured.err
    after = pd.read_csv(run / "history.csv")
    assert list(after["epoch"]) == [0, 1, 2, 3]  # every epoch exactly once
    pd.testing.assert_frame_equal(after.head(len(before)), before)  # earlier epochs kept, not retrained
    assert json.loads((run / "metrics.json").read_text())["finished"]
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [run.name]  # same folder, no new run


def _started_run(runs_dir: Path, overrides: list[str]):
    """(process, run folder) of a `medcolor run recipe demo` subprocess, once it has said where its folder is."""
    cmd = [sys.executable, "-m", "medcolor", "run", "recipe", "demo", *overrides, "--runs-dir", str(runs_dir),
           "--quiet"]
    # a shell that runs the suite in the background makes its children ignore SIGINT; Ctrl-C is what is tested here
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stderr.readline().decode()
    while not line.startswith("run folder:"):
        assert line, "the run never started"
        line = proc.stderr.readline().decode()
    return proc, Path(line.split(":", 1)[1].strip())


def test_ctrl_c_before_the_first_epoch_removes_the_run_and_says_so(tmp_path):
    proc, run = _started_run(tmp_path, ["train.epochs=2", "train.image_size=32", "train.lr_find=false"])
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130 and "Traceback" not in rest
    assert f"error: Ctrl-C before the first epoch finished: {run} removed (nothing to resume)" in rest.splitlines()
    assert not run.exists()


def test_resuming_a_finished_run_changes_nothing(demo_runs, tmp_path, capsys):
    import shutil

    _, runs = demo_runs
    run = tmp_path / runs[0].name
    shutil.copytree(runs[0], run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    stamps = {p: p.stat().st_mtime_ns for p in before}
    assert main(["run", "recipe", "demo", "--resume", str(run)]) == 0
    out, err = capsys.readouterr()
    assert f"{run} is finished (mean AUC" in err and "nothing to resume, nothing written" in err
    assert out.startswith(f"{run}: mean AUC")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert {p: p.stat().st_mtime_ns for p in before} == stamps


def test_a_run_without_any_valid_score_never_ends_finished(tmp_path, capsys, monkeypatch):
    import medcolor.tasks.metrics

    monkeypatch.setattr(medcolor.tasks.metrics, "mean_auc", lambda preds, targs: float("nan"))
    assert main(["run", "recipe", "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no epoch gave a valid validation mean_auc (NaN every epoch)")
    run = next((tmp_path / "demo").iterdir())
    assert not (run / "metrics.json").exists() and (run / "last.pth").is_file()


def test_zero_seeds_is_bad_input(tmp_path, capsys):
    assert main(["run", "recipe", "demo", "--seeds", "0", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --seeds must be at least 1, got 0"
    assert not any(tmp_path.iterdir())


def test_metrics_json_is_strict_json(demo_runs):
    _, runs = demo_runs

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    for run in runs:
        for name in ("metrics.json", "calibration.json", "timing.json", "env.json"):
            json.loads((run / name).read_text(), parse_constant=refuse)


def _tiny_recipe(path: Path, mode: int, init_from: str | None = None) -> Path:
    lines = ["description: tiny chain test", "data: {spec: nih-sample, subset: {fraction: 1.0}}",
             f"model: {{backbone: resnet18, colorizer: coloru, mode: {mode}, pretrained: false"
             + (f", init_from: 'recipe:{init_from}'" if init_from else "") + "}",
             "train: {epochs: 1, image_size: 32, bs: 64, max_lr: 0.01}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mode2_runs_mode1_first_then_reuses_it(tmp_path, capsys):
    mode1 = _tiny_recipe(tmp_path / "tiny-mode1.yaml", 1)
    mode2 = _tiny_recipe(tmp_path / "tiny-mode2.yaml", 2, init_from=str(mode1))
    runs = tmp_path / "runs"
    first = run_json(capsys, str(mode2), "--runs-dir", str(runs))
    parents = list((runs / "tiny-mode1").iterdir())
    assert len(parents) == 1 and (parents[0] / "metrics.json").is_file()
    saved = (Path(first["run_dir"]) / "recipe.yaml").read_text()
    assert f"init_from: {parents[0] / 'best.pth'}" in saved
    assert main(["run", "recipe", str(mode2), "--runs-dir", str(runs)]) == 0
    assert f"reusing tiny-mode1 run {parents[0]}" in capsys.readouterr().err
    assert len(list((runs / "tiny-mode1").iterdir())) == 1 and len(list((runs / "tiny-mode2").iterdir())) == 2


def test_mode2_colorizer_starts_from_mode1_weights(tmp_path, capsys):
    from medcolor.training.recipes import load_recipe
    from medcolor.training.learner import build_learner

    mode1 = _tiny_recipe(tmp_path / "tiny-mode1.yaml", 1)
    parent = run_json(capsys, str(mode1), "--runs-dir", str(tmp_path))
    learn = build_learner(load_recipe(str(mode1), [f"model.init_from={parent['run_dir']}", "model.mode=2"]))
    best = torch.load(Path(parent["run_dir"]) / "best.pth", weights_only=True)
    assert torch.equal(learn.model.colorizer.dw1[0].weight, best["colorizer.dw1.0.weight"])
    assert not torch.equal(learn.model.head.weight, best["backbone.fc.weight"])  # new head


def test_any_recipe_runs_on_class_folders(tmp_path, capsys):
    from fixtures import folders
    root = folders(tmp_path)
    result = run_json(capsys, "demo", "data.spec=folder", f"data.root={root}", "train.epochs=1", "train.image_size=32",
                      "train.bs=4", "--runs-dir", str(tmp_path / "runs"))
    assert set(result["auc"]) == {"normal", "pneumonia"} and result["split"] == "valid"
    assert Path(result["run_dir"]).parent.name == "demo@folder-xrays"  # kept apart from the demo's NIH runs
    card = (Path(result["run_dir"]) / "model_card.md").read_text()
    assert "policy" not in card and "spec `folder`" in card  # a folder dataset has no label policy


def test_lr_find_saves_plot_and_suggestion(tmp_path, capsys):
    assert main(["lr-find", "demo", *TINY, "--num-it", "8", "--runs-dir", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["valley"] > 0 and (Path(out["run_dir"]) / "plots" / "lr_find.png").is_file()
    assert "lr-find: 8 mini-batches" in captured.err  # said before the minutes it takes
    assert main(["lr-find", "demo", *TINY, "--num-it", "8", "--runs-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "the recipe uses 5.00e-02" in text and "medcolor run recipe demo train.max_lr=" in text


@pytest.mark.parametrize("args,match", [
    (["run", "recipe", "dmeo"], "unknown recipe 'dmeo' (did you mean demo?); `medcolor recipes ls`"),
    (["run", "recipe", "demo", "train.epoch=1"], "did you mean train.epochs"),
    (["run", "recipe", "demo", "train.image_size=36"], "coloru colorizer needs image sides divisible by 8"),
    (["run", "recipe", "chexpert-colorU-mode1"], "needs a dataset folder: pass --root DIR or data.root=DIR"),
    (["run", "recipe", "demo", "train.image_size=100000"], "train.image_size must be at most 4096"),
    (["run", "recipe", "demo", "data=[1, 2]"], "data must be a mapping (spec: ..., root: ..., labels: ...), got a list"),
])
def test_bad_runs_exit_2_and_leave_no_run_folder(tmp_path, capsys, args, match):
    assert main([*args, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and match in errors[0] and err.splitlines()[-1] == errors[0] and "Traceback" not in err
    assert not any(tmp_path.rglob("recipe.yaml"))


def test_same_seed_same_metrics(tmp_path, capsys):
    a = run_json(capsys, "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path))
    b = run_json(capsys, "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path))
    assert a["run_dir"] != b["run_dir"] and a["auc"] == b["auc"]
    assert np.isclose(a["mean_auc"], b["mean_auc"])


def test_same_seed_gives_identical_metrics_json(tmp_path, capsys):
    a = Path(run_json(capsys, "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path))["run_dir"])
    b = Path(run_json(capsys, "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path))["run_dir"])
    assert a != b and (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_best(tmp_path, capsys):
    code = main(["run", "recipe", "demo", "train.epochs=3", *TINY, "train.max_lr=1e12", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]
    assert "the loss became NaN in epoch" in errors[0] and "medcolor lr-find demo" in errors[0]
    for run in (tmp_path / "demo").iterdir():  # a run that finished an epoch keeps its checkpoints
        assert (run / "last.pth").is_file()


def test_no_room_for_checkpoints_fails_before_a_run_folder(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 9 << 20, 1 << 20))
    assert main(["run", "recipe", "demo", *TINY, "--runs-dir", str(tmp_path)]) == 2
    assert "not enough free space for checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists() or not any((tmp_path / "demo").iterdir())


def test_corrupt_or_foreign_checkpoints_give_one_line(demo_runs, tmp_path, capsys):
    import shutil
    _, runs = demo_runs
    broken = tmp_path / runs[0].name
    shutil.copytree(runs[0], broken)
    (broken / "best.pth").write_bytes((broken / "best.pth").read_bytes()[:1000])
    assert main(["evaluate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read weights file {broken / 'best.pth'}" in err and err.count("\n") == 1
    torch.save(build_other_model_state(), broken / "best.pth")
    assert main(["evaluate", str(broken)]) == 2
    assert "does not fit this model" in capsys.readouterr().err


def build_other_model_state():
    from medcolor.core.config import ModelConfig
    from medcolor.nets.models import build_model
    return build_model(ModelConfig(colorizer="deconv"), n_out=6).state_dict()


def test_recipes_and_specs_are_read_with_safe_load():
    src = Path(__file__).resolve().parents[1] / "app" / "medcolor"
    code = "\n".join(p.read_text() for p in src.rglob("*.py"))
    import re
    assert "yaml.load(" not in code and "weights_only=False" not in code
    loads = re.findall(r"torch\.load\(([^)]*)\)", code)
    assert loads and all("weights_only=True" in args for args in loads)


def test_the_lr_finder_does_not_change_the_run(tmp_path, capsys):
    a = Path(run_json(capsys, "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path))["run_dir"])
    b = Path(run_json(capsys, "demo", "train.epochs=1", *TINY, "train.lr_find=true",
                      "--runs-dir", str(tmp_path))["run_dir"])
    assert (b / "plots" / "lr_find.png").is_file() and not (a / "plots" / "lr_find.png").exists()
    assert json.loads((a / "metrics.json").read_text())["auc"] == json.loads((b / "metrics.json").read_text())["auc"]


def test_head_only_training_reaches_a_linear_probe_of_its_frozen_features(tmp_path, capsys):
    """Mode 1 without a colorizer from the ImageNet file vs a logistic regression (scikit-learn, per label) on the
    very same frozen features, extracted through medcolor's DataLoaders: the validation AUCs of the bundled sample."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from medcolor.tasks.classification import frozen_features
    from medcolor.training.learner import build_data, build_learner
    from medcolor.training.recipes import load_recipe

    overrides = ["model.colorizer=none", "model.mode=1"]
    recipe = load_recipe("demo", overrides)
    dls, table = build_data(recipe)
    learn, labels = build_learner(recipe, dls), list(dls.vocab)
    x_train, x_valid = frozen_features(learn, table.split("train")), frozen_features(learn, table.split("valid"))
    y_train, y_valid = table.split("train")[labels].to_numpy(), table.split("valid")[labels].to_numpy()
    probe = np.mean([roc_auc_score(y_valid[:, j], LogisticRegression(max_iter=2000).fit(x_train, y_train[:, j])
                                   .predict_proba(x_valid)[:, 1]) for j in range(len(labels))])
    head_only = run_json(capsys, "demo", *overrides, "--runs-dir", str(tmp_path))
    assert head_only["best_valid_mean_auc"] >= probe - 0.02, (head_only["best_valid_mean_auc"], probe)


def _one_line(err: str, start: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(start) and "Traceback" not in err, err


def test_resume_refuses_overrides_it_would_not_apply(demo_runs, capsys):
    _, runs = demo_runs
    before = {p.name: p.stat().st_mtime for p in runs[0].iterdir()}
    assert main(["run", "recipe", "demo", "--resume", str(runs[0]), "train.epochs=3"]) == 2
    _one_line(capsys.readouterr().err, "error: --resume continues")
    assert {p.name: p.stat().st_mtime for p in runs[0].iterdir()} == before


def test_resume_never_writes_a_finished_run_whose_metrics_are_unreadable(demo_runs, tmp_path, capsys):
    import shutil

    _, runs = demo_runs
    run = Path(shutil.copytree(runs[1], tmp_path / runs[1].name))
    assert main(["calibrate", str(run), "--sensitivity", "0.9", "--replace"]) == 0
    (run / "metrics.json").write_text("{not json")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["run", "recipe", "demo", "--resume", str(run)]) == 2
    _one_line(capsys.readouterr().err, "error: ")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # calibration.json untouched


def test_a_run_killed_in_its_first_epoch_is_named_and_restarts_in_place(tmp_path, capsys):
    proc, run = _started_run(tmp_path, ["train.epochs=2", *TINY])
    proc.kill()  # SIGKILL: no handler runs, as with the kernel's out-of-memory killer
    proc.wait()
    assert run.is_dir() and not (run / "last.pth").exists()
    assert main(["run", "recipe", "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path), "--quiet"]) == 0
    assert f"note: {run} was stopped before it finished" in capsys.readouterr().err
    assert main(["run", "recipe", "demo", "--resume", str(run), "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert "starting it again in place" in captured.err
    assert json.loads((run / "metrics.json").read_text())["finished"]
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [0, 1]


def test_sigterm_in_the_lr_finder_is_one_line_143_and_leaves_nothing(tmp_path):
    cmd = [sys.executable, "-m", "medcolor", "lr-find", "demo", "train.image_size=32", "--num-it", "400",
           "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(tmp_path.glob("demo/*-lrfind/recipe.yaml")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 143
    _one_line(err, "error: SIGTERM: lr-find stopped")
    assert not list(tmp_path.glob("demo/*"))


def test_sigterm_while_the_best_model_is_evaluated_keeps_a_resumable_run(tmp_path, capsys, monkeypatch):
    import medcolor.training.train as train
    from medcolor.core.errors import Terminated

    def stop(*args, **kwargs):
        raise Terminated()
    monkeypatch.setattr(train, "finalize", stop)
    assert main(["run", "recipe", "demo", "train.epochs=1", *TINY, "--runs-dir", str(tmp_path), "--quiet"]) == 143
    _one_line(capsys.readouterr().err, "error: SIGTERM: stopped while evaluating the best model")
    run = next((tmp_path / "demo").iterdir())
    monkeypatch.undo()
    assert main(["run", "recipe", "demo", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "metrics.json").read_text())["finished"]


def test_broken_run_files_are_one_line(demo_runs, tmp_path, capsys):
    import shutil

    _, runs = demo_runs
    cases = {"calibration.json": "{broken", "timing.json": None, "metrics.json": '{"finished": true}'}
    for name, text in cases.items():
        run = Path(shutil.copytree(runs[2], tmp_path / name))
        (run / name).unlink() if text is None else (run / name).write_text(text)
        args = {"calibration.json": ["predict", str(run), str(next(Path(__file__).parent.glob("data/legacy-run-v1/plots/*.png")))],
                "timing.json": ["run", "recipe", "demo", "--resume", str(run)],
                "metrics.json": ["run", "recipe", "demo", "--resume", str(run)]}[name]
        code = main(args)
        err = capsys.readouterr().err
        assert code == (0 if name == "timing.json" else 2), (name, err)
        assert "Traceback" not in err and all(not ln.startswith("error: ") or ln.count("error") >= 1 for ln in
                                              err.splitlines())
    run = Path(shutil.copytree(runs[2], tmp_path / "no-data"))
    (run / "recipe.yaml").write_text("name: demo\ntask: classification\nmodel: {}\ntrain: {}\n")
    assert main(["evaluate", str(run)]) == 2
    _one_line(capsys.readouterr().err, "error: ")
    run = Path(shutil.copytree(runs[2], tmp_path / "no-predictions"))
    (run / "predictions.csv").unlink()
    assert main(["compare", str(run), str(runs[2])]) == 2
    _one_line(capsys.readouterr().err, "error: ")
    run = Path(shutil.copytree(runs[2], tmp_path / "edited"))
    (run / "metrics.json").unlink()
    (run / "recipe.yaml").write_text((run / "recipe.yaml").read_text().replace("efficientnet_lite0", "resnet18"))
    assert main(["run", "recipe", "demo", "--resume", str(run)]) == 2
    _one_line(capsys.readouterr().err, "error: ")
    run = Path(shutil.copytree(runs[2], tmp_path / "no-path"))
    pd.read_csv(run / "predictions.csv").drop(columns="path").to_csv(run / "predictions.csv", index=False)
    assert main(["compare", str(run), str(runs[2])]) == 2
    _one_line(capsys.readouterr().err, "error: ")


@pytest.mark.parametrize("stop_after", [0, 1])
def test_resume_across_the_fine_tune_switch_keeps_the_body_frozen_then_trains_it(tmp_path, monkeypatch, stop_after):
    """Stopped in the frozen-body epoch or after the switch, --resume continues with the freezing the run had at
    that epoch (the optimiser state loads into it), and the body trains in the epochs after the switch only."""
    from fastai.callback.core import Callback

    import medcolor.training.train as train_module
    from medcolor.core.errors import Interrupted
    from medcolor.training.learner import build_learner
    from medcolor.training.recipes import load_recipe

    class StopAfter(Callback):
        order = 70  # after SaveLast and RunHistory have written the epoch

        def after_epoch(self):
            if self.epoch == stop_after:
                raise KeyboardInterrupt

    def body(state):
        return {k: v.clone() for k, v in state.items() if k.startswith("backbone.blocks.") and k.endswith("weight")}

    overrides = ["model.init_from=null", "train.freeze_epochs=1", "train.epochs=2", "train.image_size=32",
                 "data.subset.fraction=0.3", "train.bs=64"]
    imagenet = body(build_learner(load_recipe("demo-mode2", overrides)).model.state_dict())
    real = train_module.fit_callbacks
    monkeypatch.setattr(train_module, "fit_callbacks", lambda recipe: real(recipe) + [StopAfter()])
    with pytest.raises(Interrupted):
        train_module.run_recipe("demo-mode2", overrides, runs_dir=tmp_path, quiet=True)
    monkeypatch.setattr(train_module, "fit_callbacks", real)
    run = next((tmp_path / "demo-mode2").iterdir())
    stopped = body(torch.load(run / "last.pth", weights_only=False)["model"])
    assert all(torch.equal(stopped[k], imagenet[k]) for k in imagenet) == (stop_after == 0)  # epoch 0: frozen
    train_module.resume(run, quiet=True)
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [0, 1, 2]
    resumed = body(torch.load(run / "last.pth", weights_only=False)["model"])
    assert not all(torch.equal(resumed[k], stopped[k]) for k in stopped)


class ScriptedValidLoss:
    """A validation loss that stops improving after epoch 1 (written over the Recorder's, before SaveBest reads it),
    and each epoch's weights, to compare best.pth with."""

    def __init__(self, losses):
        from fastai.callback.core import Callback

        outer = self

        class Script(Callback):
            order = 55  # after the Recorder (50), before SaveBest (61)

            def after_epoch(self):
                i = self.recorder.metric_names.index("valid_loss")
                self.recorder.log[i] = self.recorder.values[-1][i - 1] = outer.losses[self.epoch]
                outer.weights.append({k: v.clone() for k, v in self.learn.model.state_dict().items()})
        self.losses, self.weights, self.callback = losses, [], Script()


def test_early_stopping_stops_after_patience_epochs_keeps_the_best_and_resumes_to_the_end(tmp_path, capsys):
    from medcolor.training.train import resume, run_recipe

    script = ScriptedValidLoss([0.9, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    result = run_recipe("demo", [*TINY, "train.epochs=8", "train.early_stop_patience=2", "train.monitor=valid_loss"],
                        runs_dir=tmp_path, quiet=True, callbacks=[script.callback])[0]
    run = Path(result["run_dir"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["best_epoch"], metrics["epochs_trained"], metrics["best_valid_loss"]) == (1, 4, 0.5)
    assert metrics["stopped_early"] == {"epoch": 3, "why": "valid_loss did not improve for 2 epochs after epoch 1 "
                                                            "(0.5000)"}
    assert list(pd.read_csv(run / "history.csv")["valid_loss"]) == [0.9, 0.5, 0.6, 0.7]
    best = torch.load(run / "best.pth", weights_only=True)
    assert all(torch.equal(best[k], script.weights[1][k]) for k in best)
    card = (run / "model_card.md").read_text()
    assert "training stopped early after epoch 3 of 8: valid_loss did not improve for 2 epochs" in card
    assert "best validation valid_loss (epoch 1)" in card
    (run / "metrics.json").unlink()  # as if killed while evaluating the best model: resume only finishes it
    resumed = resume(run, quiet=True)
    assert resumed["stopped_early"] == metrics["stopped_early"] and len(pd.read_csv(run / "history.csv")) == 4
    assert json.loads((run / "metrics.json").read_text()) == metrics


def test_early_stopping_counts_mid_epoch_evaluations_of_the_validation_loss(tmp_path):
    from medcolor.training.train import run_recipe

    result = run_recipe("demo", [*TINY, "train.bs=32", "train.epochs=2", "train.eval_every_iters=9",
                                 "train.monitor=valid_loss", "train.early_stop_patience=5"],
                        runs_dir=tmp_path, quiet=True)[0]
    run = Path(result["run_dir"])
    evals = pd.read_csv(run / "evals.csv")
    assert {"mean_auc", "valid_loss"} <= set(evals.columns)
    assert list(evals["iteration"]) == [9, 18, 27]  # 17 batches an epoch
    history = pd.read_csv(run / "history.csv")
    best = min(evals["valid_loss"].min(), history["valid_loss"].min())
    assert json.loads((run / "metrics.json").read_text())["best_valid_loss"] == pytest.approx(best, rel=1e-5)


def test_class_weights_and_the_balanced_sampler_train_end_to_end(tmp_path, capsys):
    """train.pos_weight: auto and train.sampler: balanced through the command line: metrics.json holds the weights
    (negatives / positives per label of the training split, counted here by hand) and the model card says both."""
    import json

    from medcolor.data.readers import read_table
    from medcolor.training.recipes import load_recipe

    overrides = TINY + ["train.epochs=1", "train.pos_weight=auto", "train.sampler=balanced"]
    assert main(["run", "recipe", "demo", *overrides, "--runs-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.glob("demo/*")
    m = json.loads((run / "metrics.json").read_text())
    train = read_table(load_recipe("demo").data).split("train")
    expected = {lab: min(100.0, float((train[lab] == 0).sum() / (train[lab] == 1).sum())) for lab in m["class_weights"]}
    assert m["sampler"] == "balanced" and m["class_weights"] == pytest.approx(expected, rel=1e-5)
    card = (run / "model_card.md").read_text()
    assert "negatives / positives" in card and "WeightedDL" in card
