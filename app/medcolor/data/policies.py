"""CheXpert uncertainty policies: how the observation values 1 / 0 / -1 / blank become targets."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import UsageError

POLICIES = ("u-ones", "u-zeros", "u-ignore", "thesis")
# The thesis's choice (thesis Table 4.1, after Irvin et al.): U-Ones where uncertainty mostly means "present".
# Its Table 4.2 counts (97,815 Pleural Effusion positives on the full train.csv) require U-Ones there too.
THESIS_U_ONES = {"Atelectasis", "Edema", "Pleural Effusion"}
_UNCERTAIN_TO = {"u-ones": 1.0, "u-zeros": 0.0, "u-ignore": np.nan}


def check_values(df: pd.DataFrame, labels: list[str], table: str) -> None:
    """Every label value must be 1, 0, -1 or blank."""
    for label in labels:
        col = pd.to_numeric(df[label], errors="coerce")
        bad = (col.isna() & df[label].notna()) | ~(col.isin([1, 0, -1]) | col.isna())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UsageError(f"{table}: column {label!r} has {int(bad.sum())} values outside 1 / 0 / -1 / blank "
                             f"(first: {df[label].iloc[row]} on data row {row + 1}); fix or drop those rows")


def label_policy(label: str, policy: str, policy_map: dict[str, str]) -> str:
    chosen = policy_map.get(label, policy)
    if chosen == "thesis":
        chosen = "u-ones" if label in THESIS_U_ONES else "u-zeros"
    if chosen not in _UNCERTAIN_TO:
        raise UsageError(f"unknown label policy {chosen!r} for {label!r}; choose from {', '.join(POLICIES)}")
    return chosen


def apply_policy(df: pd.DataFrame, labels: list[str], policy: str, policy_map: dict[str, str]) -> pd.DataFrame:
    """Blank -> 0; -1 -> 1 (u-ones), 0 (u-zeros) or NaN (u-ignore: masked in the loss)."""
    unknown = set(policy_map) - set(labels)
    if unknown:
        raise UsageError(f"data.policy_map names labels that are not used: {sorted(unknown)}; labels are {labels}")
    out = df.copy()
    for label in labels:
        values = pd.to_numeric(out[label], errors="coerce").fillna(0.0).astype("float32")
        out[label] = values.where(values != -1, _UNCERTAIN_TO[label_policy(label, policy, policy_map)])
    return out
