"""Search spaces (spaces.py): their form, and every value they can give checked against the recipe at once."""
import pytest

from medcolor.core.errors import UsageError
from medcolor.training.spaces import check_space, load_space, space_files


def space(tmp_path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_the_shipped_spaces_fit_the_recipes_they_are_for():
    assert {"demo-mode2", "medmnist-finetune"} <= set(space_files())
    for name in ("demo-mode2", "medmnist-finetune"):
        s = load_space(name)
        assert s.params and all("." in p.key for p in s.params)
        check_space(s, name, [])


def test_each_kind_becomes_the_optuna_distribution_it_names(tmp_path):
    import optuna

    s = load_space(space(tmp_path, "description: d\ntrain.max_lr: {log: [1.0e-4, 1.0e-1]}\n"
                                   "train.pct_start: {float: [0.1, 0.5]}\ntrain.epochs: {int: [1, 3]}\n"
                                   "model.colorizer: {choice: [none, conv1x1]}\nmodel.freeze_bn_stats: {choice: [null, true]}\n"))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = {p.key: p.suggest(trial) for p in s.params}
    dist = trial.distributions
    assert dist["train.max_lr"].log and not dist["train.pct_start"].log
    assert 1e-4 <= values["train.max_lr"] <= 1e-1 and values["train.epochs"] in (1, 2, 3)
    assert values["model.colorizer"] in ("none", "conv1x1") and values["model.freeze_bn_stats"] in (None, True)
    assert [p.override(v) for p, v in zip(s.params[3:], ("none", None))] == ["model.colorizer=none",
                                                                          "model.freeze_bn_stats=null"]


def test_every_problem_of_a_space_is_named_in_one_error(tmp_path):
    with pytest.raises(UsageError) as e:
        load_space(space(tmp_path, "train.max_lrr: {log: [1.0e-4, 1.0e-1]}\ntrain.epochs: {int: [3.5, 9]}\n"
                                   "train.wd: {log: [0, 0.1]}\nmodel.colorizer: {choice: []}\n"
                                   "train.bs: {uniform: [2, 8]}\ntrain.pct_start: {float: [0.5, 0.1]}\n"))
    message = str(e.value)
    for part in ("unknown key 'train.max_lrr'", "did you mean train.max_lr", "train.epochs: int needs [low, high], "
                 "two integers", "train.wd: a log range must be positive", "model.colorizer: choice needs a non-empty "
                 "list", "train.bs must be one of", "train.pct_start: float range [0.5, 0.1] needs low < high"):
        assert part in message, (part, message)


def test_values_the_recipe_does_not_take_are_refused_before_any_trial(tmp_path):
    s = load_space(space(tmp_path, "model.colorizer: {choice: [none, coloruu]}\ndata.body_part: {choice: [XR_HAND]}\n"
                                   "train.epochs: {int: [0, 3]}\n"))
    with pytest.raises(UsageError) as e:
        check_space(s, "demo", [])
    message = str(e.value)
    assert "model.colorizer='coloruu'" in message and "is unknown" in message
    assert "data.body_part is not used by data spec 'nih-sample'" in message
    assert "train.epochs must be at least 1" in message
