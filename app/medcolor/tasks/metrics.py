"""Per-label metrics on multi-label (or one-hot) targets: ROC AUC from scikit-learn, as plain functions and as
fastai metrics. `per_label` is the one loop that masks unknown targets (NaN: u-ignore) and knows which labels
have both classes; every per-label computation in medcolor goes through it."""
from __future__ import annotations

from functools import partial

import numpy as np
from sklearn.metrics import roc_auc_score

from ..core.io import warn


def per_label(probs: np.ndarray, targets: np.ndarray, labels: list[str], both_classes: bool = True):
    """(index, label, known targets, their probabilities) per label; with both_classes, only labels whose known
    targets hold both 0 and 1 (an AUC or a threshold needs both)."""
    for i, label in enumerate(labels):
        keep = ~np.isnan(targets[:, i])
        t, p = targets[keep, i], probs[keep, i]
        if not both_classes or len(np.unique(t)) == 2:
            yield i, label, t, p


def roc_inputs(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """label -> (known targets, probabilities) for the labels that have both classes (ROC curves)."""
    return {label: (t, p) for _, label, t, p in per_label(probs, targets, labels)}


def label_aucs(probs: np.ndarray, targets: np.ndarray, labels: list[str], warn_skipped: bool = True) -> dict:
    """Per-label AUC; a label with one class gives NaN (said once as a warning)."""
    out = {label: float("nan") for label in labels}
    for _, label, t, p in per_label(probs, targets, labels):
        out[label] = float(roc_auc_score(t, p))
    for label in (lab for lab, v in out.items() if np.isnan(v)) if warn_skipped else ():
        warn(f"AUC of {label!r} skipped: only one class among its images")
    return out


def accuracy(probs: np.ndarray, targets: np.ndarray, labels: list[str], single_label: bool) -> float:
    """ACC as MedMNIST reports it (scikit-learn's accuracy_score): the arg-max class for single-label data, else
    each label thresholded at 0.5 and the accuracies averaged over labels (unknown targets left out)."""
    from sklearn.metrics import accuracy_score

    if single_label:
        known = ~np.isnan(targets).any(axis=1)
        if not known.any():
            return float("nan")
        return float(accuracy_score(targets[known].argmax(1), probs[known].argmax(1)))
    per = [accuracy_score(t, p > 0.5) for _, _, t, p in per_label(probs, targets, labels, both_classes=False) if len(t)]
    return float(np.mean(per)) if per else float("nan")


def mean_of(aucs: dict[str, float]) -> float:
    values = [v for v in aucs.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def group_auc(probs: np.ndarray, targets: np.ndarray, groups) -> float:
    """Study-level AUC (MURA): mean image probability per study against the study's label."""
    import pandas as pd

    df = pd.DataFrame({"p": probs, "t": targets, "g": list(groups)}).groupby("g").mean()
    return float(roc_auc_score(df["t"], df["p"])) if df["t"].nunique() == 2 else float("nan")


def _one_auc(preds, targs, i):
    return label_aucs(preds[:, i:i + 1], targs[:, i:i + 1], ["_"], warn_skipped=False)["_"]


def mean_auc(preds, targs):
    return mean_of(label_aucs(preds, targs, [str(i) for i in range(preds.shape[1])], warn_skipped=False))


def auc_metrics(labels: list[str], single_label: bool) -> list:
    """fastai metrics: `mean_auc` and one `auc_<label>` each, on sigmoid (or softmax) probabilities."""
    from fastai.metrics import AccumMetric, ActivationType

    act = ActivationType.Softmax if single_label else ActivationType.Sigmoid
    make = partial(AccumMetric, activation=act, dim_argmax=-1, flatten=False, to_np=True)
    return [make(mean_auc, name="mean_auc")] + [make(partial(_one_auc, i=i), name=f"auc_{lab}")
                                                for i, lab in enumerate(labels)]
