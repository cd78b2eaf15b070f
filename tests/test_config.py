import pytest

from medcolor.core.config import DataConfig, Recipe, apply_overrides, from_dict, parse_override
from medcolor.core.errors import UsageError


def test_overrides_parse_yaml_scalars():
    assert parse_override("train.max_lr=1e-3") == (["train", "max_lr"], 1e-3)
    assert parse_override("data.labels=[Edema, Effusion]") == (["data", "labels"], ["Edema", "Effusion"])
    assert parse_override("model.pretrained=false") == (["model", "pretrained"], False)
    assert apply_overrides({"train": {"epochs": 3}}, ["train.epochs=1"]) == {"train": {"epochs": 1}}


def test_unknown_override_names_the_closest_key():
    with pytest.raises(UsageError, match=r"unknown key 'train.epoch' .*did you mean train.epochs"):
        apply_overrides({}, ["train.epoch=1"], schema=Recipe)


def test_override_without_equals():
    with pytest.raises(UsageError, match="must look like key=value"):
        parse_override("train.epochs")


def test_every_problem_is_reported_at_once():
    with pytest.raises(UsageError) as err:
        from_dict(Recipe, {"train": {"epochs": "many", "bs": 1.5, "max_lrr": 1}, "model": {"pretrained": "yes"}})
    msg = str(err.value)
    for part in ("train.epochs must be an integer", "train.bs must be an integer", "unknown key train.max_lrr",
                 "model.pretrained must be true or false"):
        assert part in msg


def test_types_are_coerced_only_where_safe():
    cfg = from_dict(DataConfig, {"valid_pct": 1, "labels": ["A"], "subset": {"fraction": 0.5}})
    assert cfg.valid_pct == 1.0 and isinstance(cfg.valid_pct, float) and cfg.subset.fraction == 0.5
    with pytest.raises(UsageError, match="on_bad_image must be one of skip, error"):
        from_dict(DataConfig, {"on_bad_image": "ignore"})


def test_null_clears_an_optional_string_field():
    out = apply_overrides({"model": {"weights": "package:x"}}, ["model.weights=null", "data.slices=5:15"], schema=Recipe)
    assert out["model"]["weights"] is None and out["data"]["slices"] == "5:15"


def test_two_hundred_unknown_keys_are_named_by_the_first_few_and_counted(tmp_path, capsys):
    from medcolor.cli import main

    (tmp_path / "many.yaml").write_text("name: many\ntrain:\n" + "".join(f"  typo{i}: 1\n" for i in range(200)))
    assert main(["recipes", "validate", str(tmp_path / "many.yaml")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: unknown key train.typo0; unknown key train.typo1;") and len(line) < 300
    assert line.endswith("and 195 more (200 problems in all)")
