from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medcolor.core.errors import UsageError
from medcolor.core.runfolder import new_run_dir


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(tmp_path, "demo", "resnet18", 0), range(8)))
    assert len(set(dirs)) == 8 and all(d.is_dir() and (d / "plots").is_dir() for d in dirs)
    stems = {d.name.rsplit("-s0", 1)[0] for d in dirs}
    assert len(stems) <= 2  # same timestamp (or the next second), told apart by -2, -3, ...


def test_unwritable_runs_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="cannot create a run folder in .*--runs-dir"):
        new_run_dir(blocker / "runs", "demo", "resnet18", 0)


def test_loading_a_run_for_prediction_opens_no_file_of_its_training_data(demo_runs, sample_dir, tmp_path,
                                                                        monkeypatch):
    """Label readers and the image decoder fail for anything under the training data's folder: loading the run
    and predicting images kept elsewhere never touch it."""
    import builtins
    import shutil

    import PIL.Image

    import medcolor.data.readers as readers
    from medcolor.results.evaluate import predict_images
    from medcolor.training.runs import load_model

    _, runs = demo_runs
    images = [shutil.copy(p, tmp_path) for p in sorted((sample_dir / "images").glob("*.png"))[:4]]
    training = str(sample_dir.resolve())

    def guard(opener):
        def opened(path, *args, **kwargs):
            assert not str(Path(str(path)).resolve()).startswith(training), f"opened training file {path}"
            return opener(path, *args, **kwargs)
        return opened
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(PIL.Image, "open", guard(PIL.Image.open))
    monkeypatch.setattr(readers, "read_table", lambda *a, **k: pytest.fail("read a label table"))
    with pytest.raises(AssertionError, match="opened training file"):  # the guard works
        PIL.Image.open(next((sample_dir / "images").glob("*.png")))
    spec, learn = load_model(runs[0])
    assert spec.labels[-1] == "Any finding" and spec.input.crop == 32
    frame = predict_images(runs[0], images)
    assert len(frame) == 4 and frame.filter(like="pred_").shape[1] == 6


def test_freeze_bn_stats_true_of_a_run_folder_before_format_3_means_frozen_parts_only(demo_runs, tmp_path):
    """Before format 3, true (the default then) kept only frozen parts' statistics; read back, it still does."""
    import json
    import shutil

    import yaml

    from medcolor.training.runs import read_recipe

    _, runs = demo_runs
    run = tmp_path / "old"
    shutil.copytree(runs[0], run)
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    saved["model"].update(freeze_bn_stats=True, mode=2)
    (run / "recipe.yaml").write_text(yaml.safe_dump(saved))
    assert read_recipe(run).model.freeze_bn_stats is True  # format 3: as written
    spec = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**spec, "format_version": 2}))
    assert read_recipe(run).model.freeze_bn_stats is None
