"""K-fold cross-validation of a table: the training and validation splits pooled and cut into K folds grouped by
patient (the `group` column), stratified, seeded; the test split never enters a fold. Fold k of a run
(`data.fold`) is its validation split, the other folds its training split.

Stratification is scikit-learn's StratifiedGroupKFold on one class per image: the class for single-label data; for
multi-label data the image's rarest positive label in the pool ("none" without one), so every fold gets its share
of the rare findings. (iterative-stratification would balance every label, but is not a dependency and does not
group by patient.)"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core.errors import UsageError

POOL = ("train", "valid")


def pool_splits(test_is_valid: bool) -> tuple[str, ...]:
    """The splits pooled for folds; where the test split is the valid split again (CheXpert, MURA), only train,
    so the test images stay out of every fold."""
    return ("train",) if test_is_valid else POOL


def strata(pool: pd.DataFrame, labels: list[str], single_label: bool) -> np.ndarray:
    """One class per image for stratifying: its class, or its rarest positive label (multi-label)."""
    targets = pool[labels].to_numpy(float)
    if single_label:
        return np.nan_to_num(targets, nan=0).argmax(1)
    positive = np.nan_to_num(targets, nan=0) == 1
    rarity = np.where(positive, positive.sum(0)[None, :], np.inf)
    return np.where(positive.any(1), rarity.argmin(1), len(labels))


def cut_folds(pool: pd.DataFrame, labels: list[str], single_label: bool, k: int, seed: int) -> np.ndarray:
    """Fold number (1..k) of every pool row; no group (patient) in two folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = pool["group"].nunique()
    if n_groups < k:
        raise UsageError(f"data.folds={k} needs at least {k} patients (groups) in the pool; it has {n_groups}")
    folds = np.zeros(len(pool), int)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    y = strata(pool, labels, single_label)
    with warnings.catch_warnings():  # "the least populated class has only n members": a rare label's share
        warnings.simplefilter("ignore", UserWarning)
        for i, (_, held_out) in enumerate(cv.split(np.zeros(len(pool)), y, pool["group"].astype(str)), start=1):
            folds[held_out] = i
    return folds


def with_fold(df: pd.DataFrame, labels: list[str], single_label: bool, k: int, fold: int, seed: int,
              test_is_valid: bool = False) -> pd.DataFrame:
    """The table with a `fold` column (0 outside the pool) and fold `fold` as its valid split, the other folds as
    train."""
    pooled = df["split"].isin(pool_splits(test_is_valid)).to_numpy()
    out = df.copy()
    out["fold"] = 0
    out.loc[pooled, "fold"] = cut_folds(df[pooled].reset_index(drop=True), labels, single_label, k, seed)
    if fold:
        out.loc[pooled, "split"] = np.where(out.loc[pooled, "fold"] == fold, "valid", "train")
        if test_is_valid:  # the original valid rows are this dataset's test split: never a fold's validation
            out = out[pooled | (out["split"] == "test")].reset_index(drop=True)
    return out


def groups_in_two_folds(assignment: pd.DataFrame) -> list[str]:
    """Groups (patients) found in more than one fold of a fold assignment (image, group, fold): the leakage check."""
    counts = assignment.groupby(assignment["group"].astype(str))["fold"].nunique()
    return sorted(counts[counts > 1].index)
