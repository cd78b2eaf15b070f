"""Train / valid / test leakage: the same image, or the same patient (study), in two splits. An image in two
splits makes the test AUC partly a training AUC; `run` refuses it. A patient in two splits of a dataset whose
splits the user made is the same leakage in a milder form (images of one patient are alike); `run` warns.
Images are compared by their normalised path: copies of one file under other names are not detected."""
from __future__ import annotations

import os

import pandas as pd

from ..core.errors import UsageError
from ..core.io import warn
from .images import describe
from .readers import Table


def in_two_splits(df: pd.DataFrame, column: str) -> dict:
    """{value: sorted splits} for values of `column` that occur in more than one split."""
    keys = df[column].map(os.path.normpath) if column == "path" else df[column].astype(str)
    splits = df.groupby(keys.to_numpy())["split"].agg(lambda s: tuple(sorted(set(s))))
    return {k: v for k, v in splits.items() if len(v) > 1}


def overlaps(table: Table) -> tuple[dict, dict]:
    """(images in two splits, groups in two splits); groups that are images (folder, csv) count only once. Where
    the reader makes the test split a copy of valid (CheXpert, MURA: their tests are hidden), that pair is not
    leakage."""
    df = table.df[table.df["split"] != "test"] if table.test_is_valid else table.df
    images = in_two_splits(df, "path")
    groups = {} if (df["group"] == df["path"]).all() else in_two_splits(df, "group")
    return images, groups


def describe_overlap(found: dict, what: str) -> str:
    """'2 images are listed in two splits (test and train) (a.png, b.png)'; `what` is the plural wording."""
    pairs = sorted({" and ".join(v) for v in found.values()})
    if len(found) == 1:
        what = what.replace("images are", "image is").replace("patients (groups) have", "patient (group) has")
    return describe(sorted(found), f"{what} in two splits ({'; '.join(pairs)})")


def refuse_leakage(table: Table) -> None:
    """Images in two splits are an error; patients (studies) in two splits a warning."""
    images, groups = overlaps(table)
    if images:
        raise UsageError(f"{describe_overlap(images, 'images are listed')}: the evaluation would score training "
                         f"images; list each image in one split")
    if groups:
        warn(f"{describe_overlap(groups, 'patients (groups) have images')}: their images are alike, so scores "
             f"on the later split are optimistic; split by patient")
