"""Calibrated probabilities and operating points, fitted on the validation split: temperature scaling (one
temperature per label for sigmoid outputs, one for softmax), thresholds per label (Youden's J, or a target
sensitivity / specificity), expected calibration error and reliability curves. A run keeps them in
`calibration.json` (runfolder); `predict` and `evaluate` apply them."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit, softmax

from ..core.errors import UsageError
from ..core.io import warn
from .metrics import per_label

EPS = 1e-7


def expected_calibration_error(t: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """Count-weighted mean |observed rate - mean probability| over equal-width probability bins. By hand:
    scikit-learn's calibration_curve drops the bin counts this weighting needs (torchmetrics is an optional extra)."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    gaps = [abs(t[bins == b].mean() - p[bins == b].mean()) * np.mean(bins == b) for b in np.unique(bins)]
    return float(np.sum(gaps))


def calibration_errors(probs, targets, labels) -> dict[str, float]:
    return {label: expected_calibration_error(t, p) for _, label, t, p in per_label(probs, targets, labels, False)}


def reliability_curves(probs, targets, labels, n_bins: int = 10) -> dict:
    """label -> (mean probability, observed rate, ECE, images) per non-empty bin, for the reliability diagram.
    The counts bin as scikit-learn's calibration_curve does (it does not return them)."""
    from sklearn.calibration import calibration_curve

    out = {}
    for _, label, t, p in per_label(probs, targets, labels, both_classes=False):
        rate, mean_p = calibration_curve(t, p, n_bins=n_bins, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p), minlength=n_bins)
        out[label] = (mean_p, rate, expected_calibration_error(t, p), counts[counts > 0])
    return out


def _nll(t: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def fit_temperatures(probs, targets, labels, softmax_outputs: bool) -> dict[str, float]:
    """The temperature T minimising validation log-loss of sigmoid(logit / T) per label (or softmax(logits / T),
    shared by every class); 1.0 for a label without both classes."""
    def best(loss, label: str = "all labels") -> float:
        log_t = minimize_scalar(loss, bounds=(-3, 3), method="bounded").x  # T in [0.05, 20]
        if abs(log_t) > 2.99:
            warn(f"temperature of {label} stops at its bound ({np.exp(log_t):.3g}): its probabilities are far from "
                 f"calibrated on validation, more than one temperature can fix")
        return float(np.exp(log_t))

    if softmax_outputs:
        known = ~np.isnan(targets).any(1)
        t = best(lambda log_t: _nll(targets[known], apply_softmax(probs[known], np.exp(log_t))))
        return {label: t for label in labels}
    temps = {label: 1.0 for label in labels}
    for _, label, t, p in per_label(probs, targets, labels):
        temps[label] = best(lambda log_t: _nll(t, expit(logit(np.clip(p, EPS, 1 - EPS)) / np.exp(log_t))), label)
    return temps


def apply_softmax(probs: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.log(np.clip(probs, EPS, 1)) / temperature, axis=1)  # log p = logits - const


def calibrate(probs: np.ndarray, cal: dict, labels: list[str]) -> np.ndarray:
    """Probabilities with the saved temperatures applied."""
    temps = cal["temperature"]
    if cal["activation"] == "softmax":
        return apply_softmax(probs, temps[labels[0]])
    return np.stack([expit(logit(np.clip(probs[:, i], EPS, 1 - EPS)) / temps[lab]) for i, lab in enumerate(labels)], 1)


def choose_thresholds(probs, targets, labels, rule: str = "youden") -> dict[str, float]:
    """Per label: Youden's J (max sensitivity + specificity - 1), or the highest threshold reaching a target
    'sensitivity:0.9' / the lowest reaching 'specificity:0.9'; 0.5 for a label without both classes."""
    from sklearn.metrics import roc_curve

    kind, _, target = rule.partition(":")
    out = {label: 0.5 for label in labels}
    for _, label, t, p in per_label(probs, targets, labels):
        fpr, tpr, thr = roc_curve(t, p)
        if kind == "youden":
            k = int(np.argmax(tpr - fpr))
        elif kind == "sensitivity":
            k = int(np.argmax(tpr >= float(target)))
        else:
            k = int(np.flatnonzero(1 - fpr >= float(target))[-1])
        out[label] = float(min(thr[k], 1.0))
    return out


def check_rule(sensitivity: float | None, specificity: float | None) -> str:
    if sensitivity is not None and specificity is not None:
        raise UsageError("give --sensitivity or --specificity, not both")
    for name, v in (("sensitivity", sensitivity), ("specificity", specificity)):
        if v is not None and not 0 < v <= 1:
            raise UsageError(f"--{name} must be in (0, 1], got {v}")
    return f"sensitivity:{sensitivity}" if sensitivity is not None else \
        f"specificity:{specificity}" if specificity is not None else "youden"


def fit(probs, targets, labels, softmax_outputs: bool, rule: str = "youden", temperatures: bool = True) -> dict:
    """Everything calibration.json holds, fitted on validation predictions; without `temperatures` every
    temperature is 1 (an ensemble, whose members are calibrated already) and only thresholds are fitted."""
    temps = fit_temperatures(probs, targets, labels, softmax_outputs) if temperatures else \
        {label: 1.0 for label in labels}
    cal = {"fitted_on": "valid", "n_images": int(len(probs)), "activation": "softmax" if softmax_outputs else "sigmoid",
           "temperature": temps, "threshold_rule": rule}
    calibrated = calibrate(probs, cal, labels)
    return cal | {"thresholds": choose_thresholds(calibrated, targets, labels, rule),
                  "ece_valid": calibration_errors(probs, targets, labels),
                  "ece_valid_calibrated": calibration_errors(calibrated, targets, labels)}


def operating_points(probs, targets, labels, thresholds: dict[str, float]) -> dict:
    """Sensitivity and specificity per label at fixed thresholds."""
    out = {}
    for _, label, t, p in per_label(probs, targets, labels):
        pred = p >= thresholds[label]
        out[label] = {"threshold": thresholds[label], "sensitivity": float(pred[t == 1].mean()),
                      "specificity": float((~pred[t == 0]).mean())}
    return out


def assess(probs, targets, labels, cal: dict | None, calibrated=None) -> dict:
    """ECE of the raw probabilities and, with a saved calibration, of the calibrated ones (given, or computed here
    from `probs`) and the sensitivity / specificity at the saved thresholds."""
    out = {"ece": calibration_errors(probs, targets, labels)}
    if cal:
        calibrated = calibrate(probs, cal, labels) if calibrated is None else calibrated
        out |= {"ece_calibrated": calibration_errors(calibrated, targets, labels), "threshold_rule": cal["threshold_rule"],
                "operating_points": operating_points(calibrated, targets, labels, cal["thresholds"])}
    return out
