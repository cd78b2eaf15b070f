"""The run-folder format: version stamps, and folders written by earlier code working with every result command:
version 1 (before model.json existed), kept in tests/data/legacy-run-v1 exactly as the main of 2026-12-01 wrote it,
and version 3, kept in tests/data/run-format-3 as commit 3314459 wrote it (its README.txt says how)."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medcolor.core import runfolder
from medcolor.cli import main
from medcolor.core.errors import UsageError

DATA = Path(__file__).parent / "data"
LEGACY = DATA / "legacy-run-v1"
FORMAT_3 = DATA / "run-format-3"


def _copied(run: Path, tmp_path: Path) -> Path:
    """A copy in runs/demo/ (the result commands write into a run folder; the kept ones stay as they are), without
    what other tests' result commands added to a shared run (eval-*, interpret-*, exports)."""
    results = shutil.ignore_patterns(f"{runfolder.EVAL_PREFIX}*", f"{runfolder.INTERPRET_PREFIX}*", "model.onnx*",
                                     "model.pt*")
    return Path(shutil.copytree(run, tmp_path / "runs" / "demo" / run.name, ignore=results))


@pytest.fixture
def legacy(tmp_path):
    return _copied(LEGACY, tmp_path)


@pytest.fixture
def format_3(tmp_path):
    return _copied(FORMAT_3, tmp_path)


@pytest.fixture(params=["legacy-run-v1", "run-format-3", "new"])
def finished_run(request, tmp_path):
    """A copy of a finished run of each format the result commands must read: version 1, version 3 as kept in
    tests/data, and one the current code has just written (demo_runs, made only when this case runs)."""
    if request.param == "new":
        _, runs = request.getfixturevalue("demo_runs")
        return _copied(runs[0], tmp_path)
    return _copied(DATA / request.param, tmp_path)


def test_new_runs_are_stamped_and_old_ones_read_as_version_1(demo_runs, legacy):
    _, runs = demo_runs
    assert runfolder.format_version(runs[0]) == runfolder.FORMAT_VERSION == 3
    assert runfolder.format_version(legacy) == 1 and not (legacy / runfolder.MODEL).exists()
    from medcolor.training.runs import model_spec
    new, old = model_spec(runs[0]), model_spec(legacy)
    assert old.labels == new.labels and old.input.to_dict() == {"size": 32, "squish": False, "crop": 32,
                                                                "mean": 0.5028, "std": 0.2902}
    assert old.network.backbone == "test_efficientnet" and not hasattr(old.network, "weights")  # the network only


def test_a_kept_version_3_run_reads_as_version_3_with_its_own_model_spec(format_3, legacy):
    from medcolor.training.runs import load_model, model_spec, read_recipe

    assert runfolder.format_version(format_3) == 3 and (format_3 / runfolder.MODEL).is_file()
    spec = model_spec(format_3)
    assert spec == runfolder.read_model_spec(format_3) and spec.format_version == 3 and spec.task == "classification"
    assert spec.labels == model_spec(legacy).labels and spec.single_label is False
    assert spec.input.to_dict() == model_spec(legacy).input.to_dict() == {"size": 32, "squish": False, "crop": 32,
                                                                          "mean": 0.5028, "std": 0.2902}
    assert {k: getattr(spec.network, k) for k in ("arch", "backbone", "colorizer", "mode")} == {
        "arch": "colornet", "backbone": "test_efficientnet", "colorizer": "conv1x1", "mode": 1}
    saved = json.loads((format_3 / runfolder.MODEL).read_text())  # the network is written without starting weights
    assert {k: saved["model"][k] for k in ("pretrained", "weights")} == {"pretrained": False, "weights": None}
    assert runfolder.ModelSpec.from_dict(saved).to_dict() == saved  # model.json reads and writes back unchanged
    # freeze_bn_stats true meant "frozen parts only" (null) before format 3; a format-3 folder's true stays true
    assert spec.network.freeze_bn_stats is True and read_recipe(format_3).model.freeze_bn_stats is True
    assert read_recipe(legacy).model.freeze_bn_stats is None
    loaded, learn = load_model(format_3)
    mix = learn.model.colorizer.mix.weight  # conv1x1 starts at ones; best.pth holds what mode 1 trained
    assert loaded == spec and mix.shape == (3, 1, 1, 1) and not bool((mix == 1).all())


def test_every_result_command_works_on_a_run_of_each_format(finished_run, tmp_path, sample_dir, capsys):
    run = finished_run  # version 1, the kept version 3 and a run written now: the same assertions
    images = [str(p) for p in sorted((sample_dir / "images").glob("*.png"))[:6]]
    before = {p.name for p in run.iterdir()}
    assert main(["evaluate", str(run), "--json"]) == 0
    saved = json.loads((run / "metrics.json").read_text())
    kept = run.name in (LEGACY.name, FORMAT_3.name)
    # a run written now: its one-epoch network's probabilities are near-equal, and evaluate's differ from training's
    # by ~1e-7 (summation order), enough to flip a near tie (seen: Effusion 0.59417 vs 0.59437); the kept runs match
    assert json.loads(capsys.readouterr().out)["auc"] == pytest.approx(saved["auc"], **({} if kept else {"abs": 1e-3}))
    probs = [pd.read_csv(f).filter(like="p_") for f in (run / "predictions.csv", run / "eval-test" / "predictions.csv")]
    assert probs[0].shape == probs[1].shape == (200, 6) and (probs[0] - probs[1]).abs().max().max() < 1e-5
    assert main(["predict", str(run), *images, "--out", str(tmp_path / "p.csv")]) == 0
    assert pd.read_csv(tmp_path / "p.csv").filter(like="pred_").shape == (6, 6)
    for fmt in ("onnx", "torchscript"):
        assert main(["export", str(run), "--format", fmt]) == 0
    assert main(["predict", str(run / "model.onnx"), *images, "--out", str(tmp_path / "o.csv")]) == 0
    assert (pd.read_csv(tmp_path / "o.csv").filter(like="pred_") == pd.read_csv(tmp_path / "p.csv")
            .filter(like="pred_")).all().all()
    assert main(["interpret", str(run), "--top-losses", "2"]) == 0
    assert main(["compare", str(run), str(run)]) == 0
    assert main(["report", str(run.parent)]) == 0
    assert main(["run", "recipe", "demo", "--resume", str(run)]) == 0
    assert main(["calibrate", str(run), "--replace", "--sensitivity", "0.8"]) == 0
    assert "demo" in capsys.readouterr().out
    new = {p.name for p in run.iterdir()} - before
    assert new == {"eval-test", "model.onnx", "model.onnx.json", "model.pt", "model.pt.json", "interpret-test"}
    assert json.loads((run / "metrics.json").read_text()) == saved  # the run itself is left as it was


def test_a_run_name_is_one_plain_folder_name(tmp_path):
    for bad in ("../x", "/abs", "a/b", "..", ""):
        with pytest.raises(UsageError, match="one plain name"):
            runfolder.new_run_dir(tmp_path, bad, "resnet18", 0)


def test_an_lr_find_folder_is_never_taken_for_a_stopped_run(tmp_path):
    """`run recipe` removes run folders stopped before they held anything; lr-find's result is not one of them."""
    import os

    from medcolor.core.runfolder import stale_runs

    lrfind, stopped = tmp_path / "demo" / "20260101-000000-resnet18-s0-lrfind", tmp_path / "demo" / "20260101-000001-x"
    for folder in (lrfind, stopped):
        (folder / "plots").mkdir(parents=True)
        (folder / "recipe.yaml").write_text("name: demo\n")
        os.utime(folder, (0, 0))  # older than the minute an ownerless folder is given
    assert stale_runs(tmp_path, "demo") == [stopped]


def _damaged(run: Path, kind: str) -> str:
    """Damage a copy of a finished run the way a careless edit or a broken copy does; the file a message must name."""
    import yaml

    if kind == "recipe without data":
        saved = yaml.safe_load((run / "recipe.yaml").read_text())
        del saved["data"]
        (run / "recipe.yaml").write_text(yaml.safe_dump(saved))
        return "recipe.yaml"
    if kind == "recipe edited to another backbone":
        (run / "recipe.yaml").write_text((run / "recipe.yaml").read_text().replace("efficientnet_lite0", "resnet18"))
        return "recipe.yaml"
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items()
                                                  if not any(s in k for s in ("auc", "acc", "ece"))}))
    return "metrics.json"


@pytest.mark.parametrize("kind", ["recipe without data", "recipe edited to another backbone", "metrics without scores"])
def test_every_result_command_on_a_damaged_run_is_one_line_naming_the_file(demo_runs, tmp_path, sample_dir, capsys,
                                                                            kind):
    """Each result command either does its job without the damaged file, or says in one `error:` line which file is
    damaged and what to do (never a raw KeyError / ValueError, never a silent success on the wrong model)."""
    _, runs = demo_runs
    run = Path(shutil.copytree(runs[0], tmp_path / "runs" / "demo" / runs[0].name))
    name = _damaged(run, kind)
    image = str(next((sample_dir / "images").glob("*.png")))
    must_refuse = {"evaluate", "report"} if name == "recipe.yaml" else {"report"}  # they read what is damaged
    commands = {"evaluate": [str(run)], "predict": [str(run), image], "interpret": [str(run), image],
                "export": [str(run), "--out", str(tmp_path / "m.onnx")], "calibrate": [str(run), "--replace"],
                "report": [str(run)], "compare": [str(run), str(runs[1])]}
    for command, args in commands.items():
        code = main([command, *args])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code in ((2,) if command in must_refuse else (0, 2)) and "Traceback" not in err, (command, err)
        if code:
            assert len(errors) == 1 and f"{run / name}" in errors[0], (command, err)
            assert "restore" in errors[0] or "leave" in errors[0], errors[0]
        else:
            assert not errors, (command, err)
