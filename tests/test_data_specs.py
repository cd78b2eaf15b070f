"""data.specs: the shipped data specs, a recipe's `data:` section on top of its spec's defaults, the value ranges a
DataConfig's types cannot say, and `key=value` overrides of `medcolor data ...` (what readers do with the result is
in test_data_readers and friends)."""
from dataclasses import replace

import pytest

from medcolor.core._resources import shipped_dir
from medcolor.core.config import DataConfig, SubsetConfig
from medcolor.data.specs import explicit_keys, list_specs, load_data_config, resolve_data, spec_defaults, spec_files
from medcolor.core.errors import UsageError

READERS = {"chestxray14": "chestxray14", "chexpert": "chexpert", "csv": "csv", "folder": "folder", "ixi": "ixi",
           "medmnist": "medmnist", "mura": "mura", "nih-sample": "chestxray14"}


def test_every_shipped_spec_is_listed_with_its_file():
    assert set(list_specs()) == set(spec_files()) == set(READERS)
    assert all(path == shipped_dir("data_specs") / f"{name}.yaml" for name, path in spec_files().items())


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_spec_resolves_to_its_reader_and_its_own_defaults(name):
    defaults = spec_defaults(name)
    assert defaults["reader"] == READERS[name] and defaults["description"]
    cfg = resolve_data({"spec": name})
    assert isinstance(cfg, DataConfig) and cfg.spec == name and cfg.reader == READERS[name]
    assert cfg.description == defaults["description"] and (cfg.mean, cfg.std) == (defaults["mean"], defaults["std"])
    for key, value in defaults.items():  # every default the spec gives lands in the DataConfig as written
        assert getattr(cfg, key) == value, key
    assert cfg.problems() == []


def test_the_named_specs_give_the_expected_fields():
    nih = resolve_data({"spec": "nih-sample"})
    assert (nih.root, nih.csv, nih.labels, nih.any_finding, nih.valid_pct) == (
        "package:medcolor/samples/nih-cxr14-sample", "Data_Entry_2017.csv", "thesis5", True, 0.2)
    chexpert = resolve_data({"spec": "chexpert"})
    assert chexpert.csv == "train.csv" and chexpert.policy == "thesis" and chexpert.root is None
    assert chexpert.labels == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    medmnist = resolve_data({"spec": "medmnist"})
    assert (medmnist.root, medmnist.name, medmnist.size, medmnist.mean, medmnist.std) == (
        "~/.medmnist", "pneumoniamnist", 28, 0.5, 0.25)
    assert (resolve_data({"spec": "ixi"}).mean, resolve_data({"spec": "ixi"}).std) == (0.0, 1.0)
    assert resolve_data({"spec": "csv"}).policy == "u-zeros" and resolve_data({"spec": "mura"}).csv == \
        "train_image_paths.csv"


def test_a_section_without_a_spec_is_the_default_spec():
    assert resolve_data({}).spec == DataConfig.spec == "nih-sample"
    assert resolve_data({}) == resolve_data({"spec": "nih-sample"})


def test_the_recipes_section_wins_over_the_spec_and_subset_merges_key_by_key():
    cfg = resolve_data({"spec": "nih-sample", "valid_pct": 0.35, "root": "/data/nih", "subset": {"fraction": 0.5}})
    assert (cfg.valid_pct, cfg.root, cfg.csv) == (0.35, "/data/nih", "Data_Entry_2017.csv")
    assert cfg.subset == SubsetConfig(fraction=0.5, seed=0)
    assert resolve_data({"spec": "nih-sample", "subset": {"seed": 8}}).subset == SubsetConfig(fraction=1.0, seed=8)


def test_an_unknown_spec_suggests_a_close_one_and_lists_the_known():
    with pytest.raises(UsageError) as e:
        resolve_data({"spec": "nih-sampel"})
    message = str(e.value)
    assert message.startswith("unknown data spec 'nih-sampel' (did you mean nih-sample")
    assert message.endswith("known specs: " + ", ".join(spec_files()))
    with pytest.raises(UsageError, match=r"^unknown data spec 'xyz'; known specs: "):
        spec_defaults("xyz")


@pytest.mark.parametrize("section, message", [
    (["nih-sample"], "data must be a mapping (spec: ..., root: ..., labels: ...), got a list"),
    ("nih-sample", "data must be a mapping (spec: ..., root: ..., labels: ...), got a str"),
    ({"spec": 3}, "data.spec must be the name of a data spec (chestxray14, "),
    ({"spec": "nih-sample", "subset": 0.1}, "data.subset is a mapping: data.subset.fraction=0.1 data.subset.seed=8, "
                                            "got 0.1"),
])
def test_a_malformed_section_is_one_line(section, message):
    with pytest.raises(UsageError) as e:
        resolve_data(section)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_field_of_the_wrong_type_or_name_is_refused():
    with pytest.raises(UsageError, match="valid_pct"):
        resolve_data({"spec": "nih-sample", "valid_pct": "a lot"})
    with pytest.raises(UsageError, match="valid_pc"):
        resolve_data({"spec": "nih-sample", "valid_pc": 0.3})


@pytest.mark.parametrize("change, message", [
    ({"std": 0.0}, "data.std must be positive, got 0.0"),
    ({"valid_pct": 1.0}, "data.valid_pct must be in [0, 1), got 1.0"),
    ({"test_pct": -0.1}, "data.test_pct must be in [0, 1), got -0.1"),
    ({"subset": SubsetConfig(fraction=0.0)}, "data.subset.fraction must be in (0, 1], got 0.0"),
    ({"p_affine": 1.5}, "data.p_affine must be in [0, 1], got 1.5"),
    ({"max_zoom": 0.9}, "data.max_zoom must be at least 1, got 0.9"),
    ({"rotate_deg": -1.0}, "data.rotate_deg must be at least 0, got -1.0"),
    ({"contrast": 1.0}, "data.contrast must be in [0, 1), got 1.0"),
    ({"folds": 1}, "data.folds must be 0 (no cross-validation) or at least 2, got 1"),
    ({"folds": 5, "fold": 6}, "data.fold must be in 1..data.folds (5), got 6"),
    ({"fold": 2}, "data.fold=2 needs data.folds (or `medcolor run recipe ... --folds K`)"),
    ({"pad_to": 0}, "data.pad_to must be between 1 and 4096 px (or null), got 0"),
    ({"pad_to": 5000}, "data.pad_to must be between 1 and 4096 px (or null), got 5000"),
])
def test_each_value_out_of_range_is_named(change, message):
    assert replace(DataConfig(), **change).problems() == [message]


def test_values_in_range_pass_and_every_problem_is_reported_at_once():
    edge = replace(DataConfig(), valid_pct=0.0, test_pct=0.0, subset=SubsetConfig(fraction=1.0), p_affine=1.0,
                   max_zoom=1.0, rotate_deg=0.0, contrast=0.0, folds=5, fold=5, pad_to=4096)
    assert edge.problems() == []
    with pytest.raises(UsageError) as e:
        resolve_data({"spec": "nih-sample", "std": -1.0, "valid_pct": 2.0})
    assert str(e.value) == "data.std must be positive, got -1.0; data.valid_pct must be in [0, 1), got 2.0"


def test_command_line_overrides_take_keys_with_or_without_data_prefix():
    cfg = load_data_config("nih-sample", ["data.rotate_deg=5", "mean=0.4", "subset.fraction=0.25"], root="/r",
                           csv="table.csv")
    assert (cfg.rotate_deg, cfg.mean, cfg.subset.fraction, cfg.root, cfg.csv) == (5.0, 0.4, 0.25, "/r", "table.csv")
    assert cfg.reader == "chestxray14" and cfg.valid_pct == 0.2  # the rest from the spec
    assert load_data_config("nih-sample") == resolve_data({"spec": "nih-sample"})
    with pytest.raises(UsageError, match="rotate_degs"):
        load_data_config("nih-sample", ["rotate_degs=5"])


def test_explicit_keys_are_the_fields_overrides_set_under_one_section():
    overrides = ["data.body_part=XR_HAND", "data.subset.fraction=0.5", "model.backbone=resnet18", "epochs=3"]
    assert explicit_keys(overrides, "data") == {"body_part", "subset"}
    assert explicit_keys(overrides, "model") == {"backbone"}
    assert explicit_keys(overrides, "train") == set() and explicit_keys(None, "data") == set()
