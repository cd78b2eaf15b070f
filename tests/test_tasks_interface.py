"""tasks: the registry of the two tasks behind one interface, what picks a run's best checkpoint, and what each task
needs of a recipe (check_recipe returns every problem as a list; test_recipes covers the messages as load_recipe
raises them)."""
from dataclasses import FrozenInstanceError, replace
from types import SimpleNamespace

import pytest
import torch

from medcolor.tasks import classification, reconstruction
from medcolor.core.config import ModelConfig, Recipe, TrainConfig
from medcolor.core.archs import ARCHS
from medcolor.tasks.interface import TASKS, Task, check_recipe, lower_is_better, monitor_of, task_of

CLASSIFY = Recipe(name="c", task="classification", model=ModelConfig(arch="colornet", colorizer="coloru"),
                  metrics=["auc"])
RECONSTRUCT = Recipe(name="r", task="reconstruction", model=ModelConfig(arch="ae-small"), metrics=["psnr", "ssim"])


def test_the_registry_holds_the_two_tasks_by_name():
    assert set(TASKS) == {"classification", "reconstruction"}
    assert all(isinstance(t, Task) and t.name == name for name, t in TASKS.items())
    with pytest.raises(FrozenInstanceError):  # one registry for every run
        TASKS["classification"].monitor = "valid_loss"


def test_each_task_has_its_score_metrics_and_functions():
    c, r = TASKS["classification"], TASKS["reconstruction"]
    assert (c.monitor, c.metrics, c.predicts_labels) == ("mean_auc", ("auc",), True)
    assert (r.monitor, r.metrics, r.predicts_labels) == ("ssim", ("psnr", "ssim"), False)
    assert (c.build_dls, c.head, c.finalize, c.summary_line, c.mid_epoch_scores) == (
        classification.build_dls, classification.head, classification.finalize, classification.summary_line,
        classification.mid_epoch_scores)
    assert (r.build_dls, r.head, r.finalize, r.summary_line) == (
        reconstruction.build_dls, reconstruction.head, reconstruction.finalize, reconstruction.summary_line)
    assert r.mid_epoch_scores is None  # train.eval_every_iters is for classification
    for task in TASKS.values():  # the score that picks best.pth is one a recipe may list
        assert task.monitor.replace("mean_", "") in task.metrics


def test_each_task_summarises_a_result_in_one_line():
    c, r = TASKS["classification"], TASKS["reconstruction"]
    assert c.summary_line({"mean_auc": 0.71234}) == "mean AUC 0.7123"
    assert c.summary_line({"mean_auc": 0.5, "acc": 0.25}) == "mean AUC 0.5000, ACC 0.2500"
    assert "every image predicted Edema" in c.summary_line({"mean_auc": 0.5, "acc": 0.3,
                                                            "constant_prediction": "Edema"})
    assert r.summary_line({"psnr": {"mean": 30.123}, "ssim": {"mean": 0.95}}) == "PSNR 30.12 dB, SSIM 0.9500"


def test_what_each_task_says_of_class_imbalance():
    learn = SimpleNamespace(loss_func=SimpleNamespace(pos_weight=torch.tensor([2.0, 0.5])),
                            dls=SimpleNamespace(vocab=["Edema", "Effusion"]))
    balanced = replace(CLASSIFY, train=TrainConfig(sampler="balanced"))
    assert TASKS["classification"].class_weighting(balanced, learn) == {
        "sampler": "balanced", "class_weights": {"Edema": 2.0, "Effusion": 0.5}}
    unweighted = SimpleNamespace(loss_func=object(), dls=learn.dls)
    assert TASKS["classification"].class_weighting(CLASSIFY, unweighted) == {"sampler": "shuffle",
                                                                            "class_weights": None}
    assert TASKS["reconstruction"].class_weighting(RECONSTRUCT, learn) == {}  # no classes to weigh


def test_a_recipe_names_its_task():
    assert task_of(CLASSIFY) is TASKS["classification"] and task_of(RECONSTRUCT) is TASKS["reconstruction"]


def test_the_monitor_is_the_tasks_score_unless_the_recipe_names_one():
    assert monitor_of(CLASSIFY) == "mean_auc" and monitor_of(RECONSTRUCT) == "ssim"
    assert monitor_of(replace(CLASSIFY, train=TrainConfig(monitor="valid_loss"))) == "valid_loss"
    assert lower_is_better("valid_loss") and lower_is_better("train_loss")
    assert not lower_is_better("mean_auc") and not lower_is_better("ssim")


def test_a_recipe_that_fits_its_task_has_no_problems():
    assert check_recipe(CLASSIFY) == []
    assert check_recipe(RECONSTRUCT) == []
    assert check_recipe(replace(CLASSIFY, metrics=[])) == []  # no metrics: every one the task computes
    assert check_recipe(replace(CLASSIFY, train=TrainConfig(monitor="valid_loss", pos_weight="auto",
                                                            sampler="balanced"))) == []


def test_an_architecture_of_the_other_task_names_those_that_fit():
    problems = check_recipe(replace(CLASSIFY, model=ModelConfig(arch="ae-small")))
    fits = [a for a, spec in ARCHS.items() if spec.task == "classification"]
    assert problems == [f"model.arch 'ae-small' does not fit task classification; use {', '.join(fits)}"]
    assert "colornet" in fits and "ae-small" not in fits


def test_an_unknown_colorizer_suggests_a_close_one_only_where_the_arch_has_one():
    assert check_recipe(replace(CLASSIFY, model=ModelConfig(colorizer="colorU"))) == []  # any case
    problems = check_recipe(replace(CLASSIFY, model=ModelConfig(colorizer="colru")))
    assert len(problems) == 1 and problems[0].startswith("model.colorizer 'colru' is unknown (did you mean coloru")
    assert check_recipe(replace(CLASSIFY, model=ModelConfig(arch="aecnn", colorizer="colru"))) == []  # no colorizer


def test_class_weighting_is_refused_for_reconstruction():
    for train in (TrainConfig(pos_weight="auto"), TrainConfig(sampler="balanced")):
        assert check_recipe(replace(RECONSTRUCT, train=train)) == [
            "train.pos_weight and train.sampler weigh classes; task reconstruction has none"]


def test_every_problem_is_returned_at_once():
    bad = replace(CLASSIFY, model=ModelConfig(arch="ae-big", colorizer="nope"), metrics=["psnr"],
                  train=TrainConfig(monitor="ssim"))
    problems = check_recipe(bad)
    assert len(problems) == 4, problems
    assert [p.split(" ")[0] for p in problems] == ["model.arch", "metrics", "train.monitor", "metrics"]
    assert problems[-1] == "metrics must include 'auc': it picks the best checkpoint"
