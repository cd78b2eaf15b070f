import pytest

from medcolor.errors import UsageError
from medcolor.recipes import copy_recipe, list_recipes, load_recipe, recipe_files, recipe_to_yaml, validate

REQUIRED = ([f"chexpert-{c}-mode{m}" for c in ("baseline", "deconv", "pixelshuffle", "colorU") for m in (1, 2)]
            + [f"mura-{c}-mode{m}" for c in ("baseline", "deconv", "pixelshuffle", "colorU") for m in (1, 2)]
            + [f"mura-{c}-from-chexpert-mode{m}" for c in ("deconv", "pixelshuffle", "colorU") for m in (1, 2, 3)]
            + ["nih14-baseline-mode3", "nih14-pixelshuffle-from-chexpert-mode3", "nih14-all-from-chexpert-mode3",
               "nih14-pixelshuffle-mode1", "nih14-baseline-mode2", "demo"])


def test_all_required_recipes_ship():
    assert set(REQUIRED) <= set(recipe_files())


@pytest.mark.parametrize("name", sorted(recipe_files()))
def test_every_shipped_recipe_validates_and_shows_its_command(name):
    r = validate(name)
    assert r.name == name
    first = recipe_files()[name].read_text().splitlines()[0]
    assert first.startswith(f"# medcolor run recipe {name}")


def test_thesis_hyper_parameters():
    m1, m2 = load_recipe("chexpert-pixelshuffle-mode1"), load_recipe("chexpert-pixelshuffle-mode2")
    assert (m1.train.max_lr, m1.train.epochs, m1.train.opt) == (2e-3, 12, "sgd")
    assert (m2.train.max_lr, m2.train.epochs, m2.model.init_from) == (2e-2, 6, "recipe:chexpert-pixelshuffle-mode1")
    assert load_recipe("chexpert-colorU-mode1").model.colorizer == "coloru"
    assert load_recipe("nih14-baseline-mode2").train.max_lr == 1e-3


def test_overrides_are_applied_and_checked():
    r = load_recipe("demo", ["train.epochs=1", "model.backbone=densenet121", "data.subset.fraction=0.5"])
    assert (r.train.epochs, r.model.backbone, r.data.subset.fraction) == (1, "densenet121", 0.5)
    assert "epochs: 1" in recipe_to_yaml(r)
    with pytest.raises(UsageError, match="did you mean model.backbone"):
        load_recipe("demo", ["model.backbon=resnet50"])
    with pytest.raises(UsageError, match="train.epochs must be at least 1"):
        load_recipe("demo", ["train.epochs=0"])


def test_unknown_recipe_points_to_ls():
    with pytest.raises(UsageError, match=r"unknown recipe 'dem' \(did you mean demo\?\); `medcolor recipes ls`"):
        load_recipe("dem")


def test_cp_copies_and_refuses_to_overwrite(tmp_path):
    out = copy_recipe("demo", str(tmp_path / "mine.yaml"))
    assert load_recipe(str(out)).name == "mine"
    with pytest.raises(UsageError, match="already exists"):
        copy_recipe("demo", str(out))


def test_ls_rows():
    rows = {r["name"]: r for r in list_recipes()}
    assert rows["demo"]["colorizer"] == "coloru" and rows["demo"]["data"] == "nih-sample" and rows["demo"]["mode"] == 2


@pytest.mark.parametrize("name", [n for n in sorted(recipe_files()) if n.startswith(("chexpert-", "mura-", "nih14-"))
                                  and "aecnn" not in n])
def test_every_thesis_recipe_also_validates_with_densenet121(name):
    assert validate(name, ["model.backbone=densenet121"]).model.backbone == "densenet121"


def test_python_api_mirrors_the_cli():
    import medcolor

    recipe = medcolor.load_recipe("demo", ["train.image_size=32", "train.bs=8"])
    learn = medcolor.build_learner(recipe)
    assert len(learn.opt.param_lists) == 3  # colorizer, body, head: mode 2 trains all, splitter keeps the parts
    xb, yb = learn.dls.one_batch()
    assert xb.shape == (8, 1, 32, 32) and yb.shape == (8, 6)
