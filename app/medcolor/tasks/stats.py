"""How sure is an AUC: bootstrap confidence intervals that resample patients (groups), the paired DeLong test of
two models on the same images, and Holm's correction across several comparisons.

Written here because none of our dependencies offers them: scikit-learn has no DeLong test; scipy's `bootstrap`
resamples observations, not clusters, and stops on a resample where an AUC is undefined (one class only), which
happens with a handful of positives; Holm's step-down is not in scipy (statsmodels has it, but is no dependency).
AUCs are computed from midranks (the Mann-Whitney form); inside the bootstrap a resample is a count per row, so one
sort per label serves all 2,000 resamples. Tests check both against scikit-learn's `roc_auc_score`."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

N_BOOT = 2000


def rank_aucs(probs: np.ndarray, targets: np.ndarray, axis: int = 0) -> np.ndarray:
    """AUC per column (images along `axis`); NaN targets (unknown) are left out, a column with one class gives NaN."""
    known = ~np.isnan(targets)
    ranks = rankdata(np.where(known, probs, np.inf), axis=axis)  # unknown rows rank above all, so they never count
    pos = known & (targets == 1)
    n_pos, n_neg = pos.sum(axis), (known & (targets == 0)).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * pos).sum(axis) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def resample_counts(groups, n_boot: int = N_BOOT, seed: int = 0):
    """(chunk, rows) arrays, n_boot rows in all: how many times each row is drawn in a bootstrap sample that draws
    whole groups (patients, studies) with replacement; one row per group is plain image resampling."""
    codes, uniques = pd.factorize(pd.Series(groups).astype(str))
    rng, n_groups = np.random.default_rng(seed), len(uniques)
    chunk = max(1, 2_000_000 // max(len(codes), n_groups))  # bounded memory for large test sets
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        draws = np.stack([rng.integers(0, n_groups, n_groups) for _ in range(size)])  # one call per resample: the
        draws += n_groups * np.arange(size)[:, None]  # random stream (so every CI) of the row-index version
        counts = np.bincount(draws.ravel(), minlength=size * n_groups).reshape(size, n_groups)
        yield counts[:, codes]


def counted_aucs(probs: np.ndarray, targets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(len(counts), labels) AUCs of the rows taken counts[b] times each, as rank_aucs would give on the resampled
    copy (midranks: a tie counts one half). One sort per label serves every resample: below each row, the counted
    negatives of lower score plus half of its tied ones."""
    out = np.full((len(counts), targets.shape[1]), np.nan)
    for j in range(targets.shape[1]):
        known = ~np.isnan(targets[:, j])
        order = np.flatnonzero(known)[np.argsort(probs[known, j], kind="stable")]
        p, t, w = probs[order, j], targets[order, j], counts[:, order].astype(float)
        neg = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w * (t == 0), axis=1)], axis=1)
        below = neg[:, np.searchsorted(p, p, side="left")]
        tied = neg[:, np.searchsorted(p, p, side="right")] - below
        pos = w * (t == 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = (pos * (below + tied / 2)).sum(1) / (pos.sum(1) * neg[:, -1])
    return out


def bootstrap_aucs(targets: np.ndarray, prob_sets: list[np.ndarray], groups, n_boot: int = N_BOOT,
                   seed: int = 0) -> np.ndarray:
    """(n_boot, len(prob_sets), labels) AUCs, every model scored on the same resampled rows (paired). A resample
    is a count per row, never a copy of the rows."""
    return np.concatenate([np.stack([counted_aucs(p, targets, c) for p in prob_sets], axis=1)
                           for c in resample_counts(groups, n_boot, seed)])


def ci95(samples: np.ndarray) -> list[float]:
    """Percentile 95 % interval of bootstrap samples, ignoring resamples where the value is undefined."""
    samples = samples[~np.isnan(samples)]
    return [float(v) for v in np.percentile(samples, [2.5, 97.5])] if len(samples) else [float("nan")] * 2


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference: twice the share of resamples on the far side of zero."""
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs):
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def mean_over_labels(aucs: np.ndarray) -> np.ndarray:
    """Mean AUC over the last axis, skipping undefined labels (as metrics.mean_of does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": a resample with no defined AUC
        return np.nanmean(aucs, axis=-1)


def delong(targets: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> dict:
    """Paired DeLong test of AUC(a) = AUC(b) on the same images, by the fast midrank algorithm (Sun & Xu 2014).
    `targets` holds 0/1 only (unknown images removed by the caller)."""
    pos = targets == 1
    m, n = int(pos.sum()), int((~pos).sum())
    x, y = np.stack([p_a[pos], p_b[pos]]), np.stack([p_a[~pos], p_b[~pos]])
    tz = rankdata(np.concatenate([x, y], axis=1), axis=1)
    aucs = (tz[:, :m].sum(1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - rankdata(x, axis=1)) / n        # per positive: share of negatives ranked below it
    v01 = 1 - (tz[:, m:] - rankdata(y, axis=1)) / m    # per negative: share of positives ranked above it
    s = np.cov(v10) / m + np.cov(v01) / n
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    diff = aucs[0] - aucs[1]
    p = float(2 * norm.sf(abs(diff) / np.sqrt(var))) if var > 1e-15 else float(diff == 0)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "diff": float(diff), "var": float(var), "p": p}


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone); NaN stays NaN and does not count as a test."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    adjusted = np.full_like(p, np.nan)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def auc_intervals(targets: np.ndarray, probs: np.ndarray, labels: list[str], groups, n_boot: int = N_BOOT,
                  seed: int = 0) -> dict:
    """Bootstrap 95 % CI of each label's AUC and of their mean."""
    aucs = bootstrap_aucs(targets, [probs], groups, n_boot, seed)[:, 0]
    return {"labels": {label: ci95(aucs[:, i]) for i, label in enumerate(labels)},
            "mean": ci95(mean_over_labels(aucs))}


def paired_comparison(targets: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, labels: list[str], groups,
                      n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Model a vs model b on the same images: per label and for the mean AUC, both AUCs, a's own bootstrap 95 % CI,
    the difference a - b with its CI (and bootstrap p), and per label the DeLong p-value."""
    boot = bootstrap_aucs(targets, [p_a, p_b], groups, n_boot, seed)
    observed = np.stack([rank_aucs(p_a, targets), rank_aucs(p_b, targets)])
    out = {"labels": {}}
    for i, label in enumerate(labels):
        known = ~np.isnan(targets[:, i])
        t = targets[known, i]
        test = delong(t, p_a[known, i], p_b[known, i]) if len(np.unique(t)) == 2 else {"p": float("nan")}
        out["labels"][label] = _difference(observed[:, i], boot[:, 0, i], boot[:, 1, i]) | {"p_delong": test["p"]}
    out["mean"] = _difference(mean_over_labels(observed), mean_over_labels(boot[:, 0]), mean_over_labels(boot[:, 1]))
    return out


def _difference(observed: np.ndarray, samples_a: np.ndarray, samples_b: np.ndarray) -> dict:
    diffs = samples_a - samples_b
    return {"auc_a": float(observed[0]), "auc_b": float(observed[1]), "ci95_a": ci95(samples_a),
            "diff": float(observed[0] - observed[1]), "ci95": ci95(diffs), "p_bootstrap": bootstrap_p(diffs)}


def corrected_resampled_t(diffs, n_train: float, n_test: float) -> dict:
    """Nadeau & Bengio's (2003) corrected resampled t-test of the per-fold differences of two models trained and
    scored on the same folds: t = mean / sqrt((1 / J + n_test / n_train) x variance), J - 1 degrees of freedom.
    The n_test / n_train term accounts for the folds' overlapping training sets, which make the plain paired t-test
    far too confident. By hand: neither scipy nor scikit-learn offers it."""
    from scipy.stats import t as student

    d = np.asarray(diffs, float)
    j = len(d)
    var = d.var(ddof=1)
    se = np.sqrt((1 / j + n_test / n_train) * var)
    t = float(d.mean() / se) if se > 0 else float("nan")
    p = float(2 * student.sf(abs(t), j - 1)) if se > 0 else float("nan")
    return {"mean_diff": float(d.mean()), "t": t, "df": j - 1, "p": p, "n_folds": j,
            "test_train_ratio": float(n_test / n_train)}
