"""`medcolor compare`: two runs' predictions on the same images, per label and for the mean AUC - both AUCs, the
difference with a bootstrap 95 % CI (resampling patients when the table has them) and the paired DeLong test.
`report --vs` uses the same comparison on seed-averaged predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import UsageError
from ..core.runfolder import RECIPE, prob_columns, is_cv_dir, is_ensemble_dir, read_folds, read_oof, read_predictions
from ..tasks.stats import N_BOOT, corrected_resampled_t, mean_over_labels, paired_comparison, rank_aucs

MAX_BOOT = 100_000


def aligned(frame_a: pd.DataFrame, frame_b: pd.DataFrame, labels: list[str], names=("A", "B")):
    """(targets, probabilities a, probabilities b, groups) on the images both frames hold, matched by path; a
    one-line error when the image sets or their labels differ."""
    only_a = set(frame_a["path"]) - set(frame_b["path"])
    only_b = set(frame_b["path"]) - set(frame_a["path"])
    if only_a or only_b:
        raise UsageError(f"{names[0]} and {names[1]} were evaluated on different images ({len(only_a)} only in "
                         f"{names[0]}, {len(only_b)} only in {names[1]}); compare needs the same test images")
    b = frame_b.set_index("path").loc[frame_a["path"]]
    t_a, t_b = frame_a[labels].to_numpy(float), b[labels].to_numpy(float)
    if not np.array_equal(np.nan_to_num(t_a, nan=-1), np.nan_to_num(t_b, nan=-1)):
        raise UsageError(f"{names[0]} and {names[1]} give the same images different labels (another label policy?)")
    probs = prob_columns(labels)
    return t_a, frame_a[probs].to_numpy(float), b[probs].to_numpy(float), frame_a["group"].to_numpy()


def compare_runs(run_a, run_b, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Two runs (or their evaluation folders, or ensembles) on the same test images; two cross-validation folders on
    their pooled out-of-fold predictions, with the corrected resampled t-test over their common folds."""
    cv = is_cv_dir(run_a) and is_cv_dir(run_b)
    read = read_oof if cv else read_predictions
    labels_a, frame_a = read(Path(run_a))
    labels_b, frame_b = read(Path(run_b))
    if labels_a != labels_b:
        raise UsageError(f"{run_a} predicts {labels_a}, {run_b} predicts {labels_b}; compare needs the same labels")
    if not 100 <= n_boot <= MAX_BOOT:
        raise UsageError(f"--n-boot must be between 100 (for a 95 % interval) and {MAX_BOOT:,} (beyond that the "
                         f"interval's last digit no longer moves and the time does), got {n_boot:,}")
    targets, p_a, p_b, groups = aligned(frame_a, frame_b, labels_a, (str(run_a), str(run_b)))
    result = paired_comparison(targets, p_a, p_b, labels_a, groups, n_boot, seed)
    n_groups = len(set(map(str, groups)))
    return {"run_a": str(run_a), "run_b": str(run_b), "title_a": title_of(run_a), "title_b": title_of(run_b),
            "n_images": len(targets), "n_groups": n_groups, "images": "out-of-fold" if cv else "test",
            "n_boot": n_boot, **result, **({"fold_test": fold_test(run_a, run_b, labels_a)} if cv else {})}


def fold_test(cv_a, cv_b, labels: list[str]) -> dict:
    """The corrected resampled t-test over the folds two cross-validations share (the same folds.csv): per fold,
    the difference of their mean AUCs on that fold's held-out images."""
    folds_a, folds_b = read_folds(Path(cv_a)), read_folds(Path(cv_b))
    same = folds_a.sort_values("image").reset_index(drop=True)[["image", "fold"]]
    if not same.equals(folds_b.sort_values("image").reset_index(drop=True)[["image", "fold"]]):
        return {"skipped": "the two cross-validations cut different folds (folds.csv differs: another "
                           "data.fold_seed?), so there are no paired folds to test"}
    (_, a), (_, b) = read_oof(Path(cv_a)), read_oof(Path(cv_b))
    b = b.set_index("path").loc[a["path"]].reset_index()
    probs = prob_columns(labels)
    diffs = []
    for fold in sorted(a["fold"].unique()):
        held = (a["fold"] == fold).to_numpy()
        t = a.loc[held, labels].to_numpy(float)
        diffs.append(float(mean_over_labels(rank_aucs(a.loc[held, probs].to_numpy(float), t)) -
                           mean_over_labels(rank_aucs(b.loc[held, probs].to_numpy(float), t))))
    k = len(diffs)
    return {"per_fold_diff": diffs, **corrected_resampled_t(diffs, n_train=k - 1, n_test=1)}


def title_of(folder) -> str:
    """'demo: efficientnet_lite0 + coloru colorizer, mode 1, seed 0' for a run, or for a run's eval-* folder."""
    from ..training.runs import model_title

    folder = Path(folder)
    run = folder if (folder / RECIPE).is_file() or is_ensemble_dir(folder) else folder.parent
    try:
        return model_title(run) + ("" if run == folder else f" [{folder.name}]")
    except UsageError:
        return folder.name


def format_comparison(r: dict) -> str:
    head = f"{'label':<28} {'AUC A':>7} {'AUC B':>7} {'A - B':>8} {'95% CI':>18} {'DeLong p':>9}"
    lines = [f"A = {r.get('title_a', '')} ({r['run_a']})", f"B = {r.get('title_b', '')} ({r['run_b']})", head]
    for label, v in r["labels"].items():
        lines.append(_line(label, v) + f" {v['p_delong']:>9.4f}")
    lines.append(_line("mean", r["mean"]) + f" {'':>9}")
    lines.append(f"{r['n_images']} {r.get('images', 'test')} images in {r['n_groups']} groups (patients), "
                 f"{r['n_boot']} paired bootstrap resamples of groups")
    if "fold_test" in r and "skipped" in r["fold_test"]:
        lines.append(f"no corrected resampled t-test: {r['fold_test']['skipped']}")
    elif "fold_test" in r:
        f = r["fold_test"]
        lines.append(f"corrected resampled t-test over {f['n_folds']} folds (Nadeau & Bengio 2003): mean A - B "
                     f"{f['mean_diff']:+.4f}, t {f['t']:.3f}, df {f['df']}, p {f['p']:.4f} (per fold: "
                     f"{', '.join(f'{d:+.3f}' for d in f['per_fold_diff'])})")
    return "\n".join(lines)


def _line(name: str, v: dict) -> str:
    ci = f"[{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"
    return f"{name:<28} {v['auc_a']:>7.4f} {v['auc_b']:>7.4f} {v['diff']:>+8.4f} {ci:>18}"
