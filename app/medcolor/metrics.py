"""ROC AUC per label (scikit-learn) as plain functions and as fastai metrics for the Recorder."""
from __future__ import annotations

import warnings
from functools import partial

import numpy as np
from sklearn.metrics import roc_auc_score


def label_aucs(probs: np.ndarray, targets: np.ndarray, labels: list[str], warn: bool = True) -> dict[str, float]:
    """Per-label AUC; masked targets (NaN, u-ignore) are left out; a label with one class gives NaN + a warning."""
    out = {}
    for i, label in enumerate(labels):
        t, p = targets[:, i], probs[:, i]
        keep = ~np.isnan(t)
        t, p = t[keep], p[keep]
        if len(np.unique(t)) < 2:
            if warn:
                warnings.warn(f"AUC of {label!r} skipped: only one class among {len(t)} images", stacklevel=2)
            out[label] = float("nan")
        else:
            out[label] = float(roc_auc_score(t, p))
    return out


def mean_of(aucs: dict[str, float]) -> float:
    values = [v for v in aucs.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def group_auc(probs: np.ndarray, targets: np.ndarray, groups) -> float:
    """Study-level AUC (MURA): mean image probability per study against the study's label."""
    import pandas as pd

    df = pd.DataFrame({"p": probs, "t": targets, "g": list(groups)}).groupby("g").mean()
    return float(roc_auc_score(df["t"], df["p"])) if df["t"].nunique() == 2 else float("nan")


def _one_auc(preds, targs, i):
    return label_aucs(preds[:, i:i + 1], targs[:, i:i + 1], ["_"], warn=False)["_"]


def _mean_auc(preds, targs):
    return mean_of(label_aucs(preds, targs, [str(i) for i in range(preds.shape[1])], warn=False))


def auc_metrics(labels: list[str], single_label: bool) -> list:
    """fastai metrics: `mean_auc` and one `auc_<label>` each, on sigmoid (or softmax) probabilities."""
    from fastai.metrics import AccumMetric, ActivationType

    act = ActivationType.Softmax if single_label else ActivationType.Sigmoid
    make = partial(AccumMetric, activation=act, dim_argmax=-1, flatten=False, to_np=True)
    return [make(_mean_auc, name="mean_auc")] + [make(partial(_one_auc, i=i), name=f"auc_{lab}")
                                                 for i, lab in enumerate(labels)]
