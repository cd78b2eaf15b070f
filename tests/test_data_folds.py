import numpy as np
import pandas as pd
import pytest

from medcolor.data.folds import cut_folds, groups_in_two_folds, strata, with_fold
from medcolor.core.errors import UsageError


def table(n_patients=40, per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        split = "test" if p % 5 == 0 else "valid" if p % 7 == 0 else "train"
        for i in range(per_patient):
            rows.append({"path": f"p{p}/{i}.png", "group": f"p{p}", "split": split,
                         "A": float(rng.random() < 0.1), "B": float(rng.random() < 0.5)})
    return pd.DataFrame(rows)


def test_folds_are_disjoint_by_patient_cover_the_pool_and_leave_test_alone():
    df = table()
    pool = df["split"] != "test"
    seen = []
    for fold in range(1, 6):
        out = with_fold(df, ["A", "B"], False, 5, fold, seed=3)
        assert (out.loc[~pool, "split"] == "test").all() and (out.loc[~pool, "fold"] == 0).all()
        valid = out[out["split"] == "valid"]
        assert (valid["fold"] == fold).all()
        assert not set(valid["group"]) & set(out.loc[out["split"] == "train", "group"])  # no patient in both
        seen += list(valid["path"])
    assert sorted(seen) == sorted(df.loc[pool, "path"])  # every pool image validates exactly once
    assignment = out.loc[pool].rename(columns={"path": "image"})[["image", "group", "fold"]]
    assert groups_in_two_folds(assignment) == [] and set(assignment["fold"]) == {1, 2, 3, 4, 5}


def test_the_same_seed_cuts_the_same_folds_and_another_seed_others():
    df = table()
    pool = df[df["split"] != "test"].reset_index(drop=True)
    a, b = cut_folds(pool, ["A", "B"], False, 5, 0), cut_folds(pool, ["A", "B"], False, 5, 0)
    assert (a == b).all() and not (a == cut_folds(pool, ["A", "B"], False, 5, 1)).all()


def test_multi_label_strata_are_each_images_rarest_positive_label():
    df = pd.DataFrame({"A": [1, 0, 1, 0, np.nan], "B": [1, 1, 0, 0, 1], "C": [1, 1, 1, 1, 0]})
    # positives in the pool: A 2, B 3, C 4 -> rarest positive of each image; an image without one: len(labels)
    assert strata(df, ["A", "B", "C"], False).tolist() == [0, 1, 0, 2, 1]
    assert strata(pd.DataFrame({"x": [0, 1, 0], "y": [1, 0, 1]}), ["x", "y"], True).tolist() == [1, 0, 1]
    assert strata(pd.DataFrame({"A": [0.0, 0.0]}), ["A"], False).tolist() == [1, 1]


def test_more_folds_than_patients_is_one_line():
    with pytest.raises(UsageError, match="needs at least 5 patients"):
        cut_folds(table(n_patients=3)[lambda d: d["split"] != "test"], ["A"], False, 5, 0)


def test_the_nih_sample_read_with_folds(sample_dir):
    from medcolor.training.recipes import load_recipe
    from medcolor.data.readers import read_table

    plain = read_table(load_recipe("demo").data)
    tables = [read_table(load_recipe("demo", ["data.folds=3", f"data.fold={k}"]).data) for k in (1, 2, 3)]
    for t in tables:
        assert t.df[t.df["split"] == "test"]["path"].tolist() == plain.split("test")["path"].tolist()
    valid = [set(t.split("valid")["path"]) for t in tables]
    assert set.union(*valid) == set(plain.df.loc[plain.df["split"] != "test", "path"])
    assert sum(map(len, valid)) == len(set.union(*valid))


def test_where_test_is_the_valid_split_again_only_train_is_pooled_and_valid_never_validates_a_fold():
    """CheXpert and MURA: the reader's test rows are copies of its valid rows (their own tests are hidden)."""
    df = table()
    df = pd.concat([df[df["split"] != "test"], df[df["split"] == "valid"].assign(split="test")], ignore_index=True)
    out = with_fold(df, ["A", "B"], False, 3, 2, seed=0, test_is_valid=True)
    assert set(out.loc[out["split"] == "valid", "fold"]) == {2}
    assert sorted(out.loc[out["split"] == "test", "path"]) == sorted(df.loc[df["split"] == "test", "path"])
    assert set(out.loc[out["split"] != "test", "path"]) == set(df.loc[df["split"] == "train", "path"])
