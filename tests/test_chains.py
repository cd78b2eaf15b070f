import json

from medcolor.training.chains import find_parent_run, parent_overrides
from medcolor.training.recipes import load_recipe, recipe_to_yaml


def _finished(runs_dir, recipe, name):
    folder = runs_dir / recipe.name / name
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    (folder / "best.pth").write_bytes(b"")
    (folder / "metrics.json").write_text(json.dumps({"finished": True}))
    return folder


def test_a_parent_run_must_start_from_the_same_weights(tmp_path):
    imagenet = load_recipe("demo")
    _finished(tmp_path, imagenet, "20260101-000000-efficientnet_lite0-s0")
    for overrides, expected in (([], "20260101-000000-efficientnet_lite0-s0"), (["model.weights=null"], None)):
        child = load_recipe("demo-mode2", overrides)
        parent = load_recipe("demo", parent_overrides(overrides, child))
        found = find_parent_run(tmp_path, parent, child, same_data=True)
        assert (found.name if found else None) == expected


def test_a_cross_validation_fold_starts_from_a_parent_of_the_same_fold(tmp_path):
    """A parent trained on another fold (or on the plain split) has seen this fold's validation images."""
    for name, overrides in (("20260101-000000-efficientnet_lite0-s0", []),
                            ("20260101-000001-efficientnet_lite0-s0-f2of5", ["data.folds=5", "data.fold=2"])):
        _finished(tmp_path, load_recipe("demo", overrides), name)
    for overrides, expected in ((["data.folds=5", "data.fold=1"], None),
                                (["data.folds=5", "data.fold=2"], "20260101-000001-efficientnet_lite0-s0-f2of5"),
                                ([], "20260101-000000-efficientnet_lite0-s0")):
        child = load_recipe("demo-mode2", overrides)
        found = find_parent_run(tmp_path, load_recipe("demo", parent_overrides(overrides, child)), child, True)
        assert (found.name if found else None) == expected
