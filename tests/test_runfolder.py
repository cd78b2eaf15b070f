"""The run-folder format: version stamps, and folders written before model.json existed (version 1, kept in
tests/data/legacy-run-v1 exactly as the main of 2026-12-01 wrote it) working with every result command."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medcolor.core import runfolder
from medcolor.cli import main
from medcolor.core.errors import UsageError

LEGACY = Path(__file__).parent / "data" / "legacy-run-v1"


@pytest.fixture
def legacy(tmp_path):
    return Path(shutil.copytree(LEGACY, tmp_path / "runs" / "demo" / LEGACY.name))


def test_new_runs_are_stamped_and_old_ones_read_as_version_1(demo_runs, legacy):
    _, runs = demo_runs
    assert runfolder.format_version(runs[0]) == runfolder.FORMAT_VERSION == 3
    assert runfolder.format_version(legacy) == 1 and not (legacy / runfolder.MODEL).exists()
    from medcolor.training.runs import model_spec
    new, old = model_spec(runs[0]), model_spec(legacy)
    assert old.labels == new.labels and old.input == {"size": 32, "squish": False, "crop": 32, "mean": 0.5028,
                                                      "std": 0.2902}
    assert old.model["backbone"] == "test_efficientnet" and old.model["weights"] is None


def test_every_result_command_works_on_a_version_1_run(legacy, tmp_path, sample_dir, capsys):
    images = [str(p) for p in sorted((sample_dir / "images").glob("*.png"))[:6]]
    before = {p.name for p in legacy.iterdir()}
    assert main(["evaluate", str(legacy), "--json"]) == 0
    saved = json.loads((legacy / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out)["auc"] == pytest.approx(saved["auc"])
    assert main(["predict", str(legacy), *images, "--out", str(tmp_path / "p.csv")]) == 0
    assert pd.read_csv(tmp_path / "p.csv").filter(like="pred_").shape == (6, 6)
    for fmt in ("onnx", "torchscript"):
        assert main(["export", str(legacy), "--format", fmt]) == 0
    assert main(["predict", str(legacy / "model.onnx"), *images, "--out", str(tmp_path / "o.csv")]) == 0
    assert (pd.read_csv(tmp_path / "o.csv").filter(like="pred_") == pd.read_csv(tmp_path / "p.csv")
            .filter(like="pred_")).all().all()
    assert main(["interpret", str(legacy), "--top-losses", "2"]) == 0
    assert main(["compare", str(legacy), str(legacy)]) == 0
    assert main(["report", str(legacy.parent)]) == 0
    assert main(["run", "recipe", "demo", "--resume", str(legacy)]) == 0
    assert main(["calibrate", str(legacy), "--replace", "--sensitivity", "0.8"]) == 0
    assert "demo" in capsys.readouterr().out
    new = {p.name for p in legacy.iterdir()} - before
    assert new == {"eval-test", "model.onnx", "model.onnx.json", "model.pt", "model.pt.json", "interpret-test"}
    assert json.loads((legacy / "metrics.json").read_text()) == saved  # the run itself is left as it was


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
